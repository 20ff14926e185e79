"""The app-facing API's own OpenAPI document (/developer/v1/schema/) and a client whose every
/developer/v1/ response is validated against it, as tests.openapi does for the client API (whose
responses under /api/ the same client still checks against that document)."""

import copy
import json
from functools import cache

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from developer_api.schema import APP_API_PREFIX, APP_API_SETTINGS
from tests.openapi import (
    FORMATS,
    SchemaCheckedClient,
    _closed,
    _json_body,
    _pointer,
    path_template,
)

DOCUMENT_URI = "urn:messenger:developer-openapi"


@cache
def app_api_document() -> dict:
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import patched_settings

    with patched_settings(APP_API_SETTINGS):
        schema = SchemaGenerator(urlconf="developer_api.app_urls").get_schema(request=None, public=True)
        return json.loads(OpenApiJsonRenderer().render(schema))


@cache
def _registry() -> Registry:
    document = _closed(copy.deepcopy(app_api_document()))
    return Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))


def assert_app_response_documented(response) -> None:
    path, method = response.request["PATH_INFO"], response.request["REQUEST_METHOD"].lower()
    template = path_template(path)
    what = f"{method.upper()} {path} -> {response.status_code}"
    operation = app_api_document()["paths"].get(template or "", {}).get(method)
    if operation is None:
        assert response.status_code in (404, 405), f"{what}: undocumented, yet not a 404/405"
        body = _json_body(response, what)
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
        return
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{what}: status not documented ({sorted(operation['responses'])})"
    content = documented.get("content")
    if not content:
        assert response.content == b"", f"{what} is documented without a body"
        return
    if "application/json" not in content and "*/*" in content:  # a file download: any type, not validated
        return
    body = _json_body(response, what)
    pointer = _pointer("paths", template, method, "responses", str(response.status_code), "content",
                       "application/json", "schema")
    validator = jsonschema.Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=_registry(),
                                                format_checker=FORMATS)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what} does not match its schema: " + "; ".join(f"{e.json_path}: {e.message}" for e in errors)


class AppClient(SchemaCheckedClient):
    """Sends `Authorization: Bearer <API key>`; checks /developer/v1/ responses against the app API's
    document (and /api/ ones against the client API's, like SchemaCheckedClient)."""

    def request(self, **kwargs):
        response = super().request(**kwargs)
        path = response.request["PATH_INFO"]
        if path.startswith(APP_API_PREFIX) and not path.endswith(("/schema/", "/docs/")):
            assert_app_response_documented(response)
        return response
