"""The developer API's OpenAPI documents: the app-facing API's own (/developer/v1/schema/), the
owners' and users' calls in the client API's, both without warnings, and JSON errors throughout."""

import json

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from developer_api.schema import APP_API_PREFIX
from tests.developer_api.app_schema import AppClient, app_api_document
from tests.developer_api.helpers import app_client, make_key
from tests.openapi import openapi_document, route_template

pytestmark = pytest.mark.django_db


def app_api_routes() -> set[str]:
    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    routes = {route_template(r) for r in walk(get_resolver().url_patterns, "")}
    # The catch-all that answers JSON 404s is a regex route, which starts "/^" and is left out here.
    return {r for r in routes if r.startswith(APP_API_PREFIX) and not r.endswith(("/schema/", "/docs/"))}


def test_the_app_api_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf", "developer_api.app_urls",
                 "--custom-settings", "developer_api.schema.APP_API_SETTINGS", "--file", str(tmp_path / "s.yaml"))


def test_the_app_api_schema_is_valid_and_served(api_client):
    validate_schema(app_api_document())
    served = api_client.get("/developer/v1/schema/", HTTP_ACCEPT="application/json")

    assert served.status_code == 200
    assert json.loads(served.content) == app_api_document()


def test_every_app_api_route_is_documented_there_and_only_there():
    documented = set(app_api_document()["paths"])

    assert documented == app_api_routes()
    assert not [p for p in openapi_document()["paths"] if p.startswith(APP_API_PREFIX)]


def test_the_app_api_declares_the_api_key_and_its_errors():
    document = app_api_document()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["security"] == [{"apiKey": []}], f"{method} {path}"
            for status in ("400", "401", "403", "404", "429"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorSchema"}, f"{method} {path} {status}"


def test_owner_and_user_calls_are_in_the_client_api_schema_under_their_tags():
    paths = openapi_document()["paths"]

    assert paths["/api/v1/developer/apps"]["post"]["tags"] == ["developer"]
    assert paths["/api/v1/developer/apps/{app_id}/keys/{key_id}"]["delete"]["tags"] == ["developer"]
    assert paths["/api/v1/reports"]["post"]["tags"] == ["apps"]
    assert paths["/api/v1/apps/{app_id}/opt-in"]["post"]["tags"] == ["apps"]


def test_unknown_app_api_urls_answer_json_404():
    _, client = app_client()

    for url in ("/developer/v1/nothing", "/developer/v1/messages/a/b"):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_app_api_urls_answer_json_404_to_every_method_not_a_csrf_page(method):
    # As over HTTP, where Django's CSRF check applies to any view not exempt from it: an app's POST
    # to a mistyped URL (a trailing slash) gets the API's 404, not an HTML "CSRF verification failed".
    app, _ = app_client()
    client = AppClient(make_key(app)[1], enforce_csrf_checks=True)

    for url in ("/developer/v1/messages/", "/developer/v1/nothing"):
        response = getattr(client, method)(url, {"to": "+12125550123"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url


def test_a_method_the_app_api_lacks_is_a_405_in_the_error_shape():
    _, client = app_client()

    response = client.delete("/developer/v1/messages")

    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_a_malformed_body_is_a_400():
    _, client = app_client()

    response = client.post("/developer/v1/messages", data='{"to": ', content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_body"


def test_bodies_that_are_not_json_or_too_large_are_refused_as_documented():
    _, client = app_client()

    form = client.post("/developer/v1/messages", {"to": "+12125550123"}, format="multipart")
    huge = client.post("/developer/v1/messages", {"to": "+12125550123", "type": "text",
                                                  "text": {"body": "x" * 300_000}})

    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"


def test_the_app_api_docs_are_served_offline(client):
    page = client.get("/developer/v1/docs/")

    assert page.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in page.content and b"https://" not in page.content.split(b"<body")[0]


def test_app_client_checks_the_document():
    with pytest.raises(AssertionError):
        from django.http import JsonResponse

        from tests.developer_api.app_schema import assert_app_response_documented

        response = JsonResponse({"id": 1}, status=200)
        response.request = {"PATH_INFO": "/developer/v1/app", "REQUEST_METHOD": "GET"}
        assert_app_response_documented(response)
    assert AppClient  # the client every app-facing test uses
