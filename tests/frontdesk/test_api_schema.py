"""The published API description (OpenAPI 3.1 at /api/schema/, Swagger UI at /api/docs/), the one
error shape every failure has, and the schema check the other REST tests rely on."""

import json
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import call_command
from django.http import HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from tests.developer_api.helpers import app_client
from tests.factories import api_user
from tests.openapi import API_PREFIX, assert_matches_schema, openapi_document, route_template

pytestmark = pytest.mark.django_db


def api_routes() -> list[str]:
    """Every URL route under /api/v1/, written as the document's path templates."""
    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    templates = (route_template(route) for route in walk(get_resolver().url_patterns, ""))
    return sorted(template for template in templates if template.startswith(API_PREFIX))


# --- The document -----------------------------------------------------------------------------
def test_the_schema_is_served_as_openapi_3_1_in_yaml_and_json(api_client):
    as_yaml = api_client.get("/api/schema/")
    as_json = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert as_yaml.status_code == 200
    assert as_yaml.content.startswith(b"openapi: 3.1.0")
    assert as_json.status_code == 200
    assert json.loads(as_json.content)["openapi"] == "3.1.0"


def test_the_served_schema_is_the_one_responses_are_checked_against(api_client):
    served = json.loads(api_client.get("/api/schema/", HTTP_ACCEPT="application/json").content)

    assert served == openapi_document()


def test_the_schema_is_valid_openapi_3_1():
    validate_schema(openapi_document())


def test_the_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any guess drf-spectacular had to make (an untyped field, a clash of
    # component names, a view it could not introspect) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_api_route_is_documented():
    documented = set(openapi_document()["paths"])

    assert set(api_routes()) - documented == set()
    assert documented - set(api_routes()) == set()


def test_every_operation_documents_the_error_shape_for_its_failures():
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "404"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorSchema"}, f"{method} {path} {status}"


def test_operations_that_need_a_token_declare_the_bearer_scheme():
    document = openapi_document()
    assert document["components"]["securitySchemes"]["deviceToken"] == {
        "type": "http", "scheme": "bearer", "description": "Token from auth/register or auth/login."
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path in ("/api/v1/auth/register", "/api/v1/auth/login"):
                assert operation["security"] == [{}], f"{method} {path} should need no token"
            else:
                assert {"deviceToken": []} in operation["security"], f"{method} {path}"


# --- Swagger UI, offline ----------------------------------------------------------------------
class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def test_the_api_docs_load_swagger_ui_from_our_own_static_files(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    parser = _Assets()
    parser.feed(page.content.decode())

    assert any(url.endswith("swagger-ui-bundle.js") for url in parser.urls)
    assert any(url.endswith("swagger-ui.css") for url in parser.urls)
    for url in parser.urls:
        parts = urlsplit(url)
        # Served by this server: no scheme, no host (so no CDN), and Swagger UI itself from /static/.
        assert not parts.scheme and not parts.netloc, url
        if "swagger-ui" in parts.path:
            assert parts.path.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        asset.close()


# --- The error contract -----------------------------------------------------------------------
def test_unknown_urls_under_api_answer_with_a_json_404(api_client):
    for url in ("/api/v1/nothing-here", "/api/v2/conversations", "/api/v1/conversations/not-a-number"):
        response = api_client.get(url)

        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"


def test_a_malformed_json_body_is_a_400(api_client):
    response = api_client.post("/api/v1/auth/login", data='{"phone_number": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


def test_a_json_body_that_is_not_an_object_is_a_400():
    _, client = api_user()

    response = client.post("/api/v1/conversations", data=["direct"])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_a_method_a_url_does_not_offer_is_a_405_in_the_error_shape():
    _, client = api_user()

    response = client.delete("/api/v1/me")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_api_answers_json_whatever_the_request_accepts():
    user, client = api_user()
    for accept in ("text/html", "application/xml", "image/*"):
        answer = client.get("/api/v1/me", HTTP_ACCEPT=accept)

        assert answer.status_code == 200, accept
        assert answer["Content-Type"] == "application/json"
        assert answer.json()["id"] == user.pk


def test_an_error_asked_for_as_html_is_still_the_json_error_shape(api_client):
    response = api_client.get("/api/v1/me", HTTP_ACCEPT="text/html")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_app_api_answers_json_whatever_the_request_accepts():
    app, client = app_client()

    answer = client.get("/developer/v1/app", HTTP_ACCEPT="text/html")

    assert answer.status_code == 200
    assert answer.json()["id"] == app.pk


def test_the_schema_asked_for_in_a_format_it_lacks_is_406_not_acceptable(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    # DRF answers a failed negotiation in the view's first format, the schema's YAML.
    assert yaml.safe_load(response.content)["error"]["code"] == "not_acceptable"


# --- The schema check itself --------------------------------------------------------------------
USER = {"id": 1, "phone_number": "+12125550123", "display_name": "Ada", "about": "", "is_business": False,
        "photo": None}


def test_the_schema_check_accepts_a_documented_response():
    assert_matches_schema(JsonResponse(USER), "get", "/api/v1/me")
    assert_matches_schema(JsonResponse({"error": {"code": "x", "message": "y"}}, status=404), "get", "/api/v1/me")
    assert_matches_schema(HttpResponse(status=204), "post", "/api/v1/auth/logout")


def test_the_schema_check_refuses_an_undocumented_status():
    with pytest.raises(AssertionError, match="not documented"):
        assert_matches_schema(JsonResponse({"error": {"code": "x", "message": "y"}}, status=418), "get", "/api/v1/me")
    with pytest.raises(AssertionError, match="not documented"):
        assert_matches_schema(JsonResponse(USER, status=201), "get", "/api/v1/me")


def test_the_schema_check_refuses_an_undocumented_operation():
    with pytest.raises(AssertionError, match="not in the OpenAPI document"):
        assert_matches_schema(JsonResponse(USER), "delete", "/api/v1/me")


def test_the_schema_check_refuses_a_missing_or_mistyped_field():
    with pytest.raises(AssertionError, match="'about' is a required property"):
        assert_matches_schema(JsonResponse({k: v for k, v in USER.items() if k != "about"}), "get", "/api/v1/me")
    with pytest.raises(AssertionError, match="is not of type 'integer'"):
        assert_matches_schema(JsonResponse({**USER, "id": "1"}), "get", "/api/v1/me")


def test_the_schema_check_refuses_an_undocumented_field():
    with pytest.raises(AssertionError, match="Unevaluated properties"):
        assert_matches_schema(JsonResponse({**USER, "password": "oops"}), "get", "/api/v1/me")


def test_the_schema_check_refuses_an_error_in_another_shape():
    with pytest.raises(AssertionError, match="'error' is a required property"):
        assert_matches_schema(JsonResponse({"detail": "Not found."}, status=404), "get", "/api/v1/me")


def test_the_schema_check_refuses_a_timestamp_without_a_timezone():
    message = {
        "id": 1, "conversation": 1, "seq": 1, "sender": 1, "kind": "text", "text": "hi", "event": None, "media": None,
        "client_id": "c1", "created_at": "2025-01-01T12:00:00", "reply_to": None, "edited_at": None, "forwarded": False,
        "status": "sent", "reactions": [],
    }
    path = "/api/v1/conversations/{conversation_id}/messages"
    assert_matches_schema(JsonResponse({**message, "created_at": "2025-01-01T12:00:00Z"}, status=201), "post", path)
    with pytest.raises(AssertionError, match="date-time"):
        assert_matches_schema(JsonResponse(message, status=201), "post", path)


def test_the_schema_check_refuses_a_body_where_none_is_documented():
    with pytest.raises(AssertionError, match="without a body"):
        assert_matches_schema(JsonResponse({}, status=204), "post", "/api/v1/auth/logout")
