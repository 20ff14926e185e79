"""Responses checked against the OpenAPI document the project publishes at /api/schema/.

`assert_matches_schema` validates one response body against the schema documented for its
operation and status code (OAS 3.1 schemas are JSON Schema 2020-12). `SchemaCheckedClient` does it
for every request a test makes, finding the path template from the URL the request resolved to, so
each test of the REST API also checks that the documentation tells the truth, errors included.

The check is stricter than the document in one way: objects with documented properties may not
carry undocumented ones, so a field added to a payload without its serializer fails here.
"""

import copy
import json
import re
from datetime import datetime
from functools import cache

import jsonschema
from django.urls import Resolver404, resolve
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient

DOCUMENT_URI = "urn:messenger:openapi"
API_PREFIX = "/api/v1/"
ERROR_COMPONENT = "ErrorSchema"

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 as clients parse it: a date, a "T", a time and an explicit offset (or Z)."""
    if not isinstance(value, str):
        return True  # "type" reports non-strings
    return "T" in value and datetime.fromisoformat(value).tzinfo is not None


@cache
def openapi_document() -> dict:
    """The schema as /api/schema/ serves it, made once per test run."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    # Through the JSON renderer, as clients download it: lazy strings and the like become plain JSON.
    return json.loads(OpenApiJsonRenderer().render(schema))


def _closed(node: object) -> object:
    """A copy where every object schema with declared properties refuses undeclared ones."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if "properties" in closed and "additionalProperties" not in closed and "unevaluatedProperties" not in closed:
        closed["unevaluatedProperties"] = False
    return closed


@cache
def _registry() -> Registry:
    document = _closed(copy.deepcopy(openapi_document()))
    return Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _validate(body: object, pointer: str, *, what: str) -> None:
    """Validate `body` against the schema at `pointer` in the document; refs resolve within it."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=_registry(), format_checker=FORMATS
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "\n".join(f"  at {e.json_path}: {e.message}" for e in errors[:10])
        raise AssertionError(f"{what} does not match its documented schema:\n{problems}\nbody: {body!r}")


def _json_body(response, what: str) -> object:
    content_type = response.get("Content-Type", "")
    assert content_type.startswith("application/json"), (
        f"{what} is {content_type!r}, not JSON: {response.content[:200]!r}"
    )
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{what} is not valid JSON: {response.content[:200]!r}") from exc


def documented_operation(method: str, path_template: str) -> dict | None:
    return openapi_document()["paths"].get(path_template, {}).get(method.lower())


def assert_matches_schema(response, method: str, path_template: str) -> None:
    """The response's status is documented for the operation and its body matches that schema.

    `path_template` is written as in the document: "/api/v1/conversations/{conversation_id}".
    """
    method = method.lower()
    what = f"{method.upper()} {path_template} -> {response.status_code}"
    operation = documented_operation(method, path_template)
    assert operation is not None, f"{method.upper()} {path_template} is not in the OpenAPI document"
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (
        f"{what}: status {response.status_code} is not documented (documented: {sorted(operation['responses'])})"
    )
    content = documented.get("content")
    if not content:
        assert response.content == b"", f"{what} is documented without a body but has {response.content[:200]!r}"
        return
    if "application/json" not in content and "*/*" in content:  # a file download: any type, not validated
        return
    assert "application/json" in content, f"{what} is documented only as {sorted(content)}"
    body = _json_body(response, what)
    _validate(body, _pointer("paths", path_template, method, "responses", str(response.status_code),
                             "content", "application/json", "schema"), what=what)


def assert_is_error(response, *, what: str = "response") -> None:
    """A 4xx whose body has the API's one error shape (for URLs and methods the document lacks)."""
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} is not a client error"
    _validate(_json_body(response, what), _pointer("components", "schemas", ERROR_COMPONENT), what=what)


def route_template(route: str) -> str:
    """A Django route ("api/v1/conversations/<int:conversation_id>") written as the document's path."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.lstrip("/"))


def path_template(path: str) -> str | None:
    """The document's path for a concrete URL ("/api/v1/conversations/7" -> ".../{conversation_id}")."""
    try:
        return route_template(resolve(path).route)
    except Resolver404:
        return None


def check_response(response) -> None:
    """Hold any response under /api/v1/ (or an unknown /api/ URL) to the document."""
    path, method = response.request["PATH_INFO"], response.request["REQUEST_METHOD"]
    if not path.startswith("/api/"):
        return
    template = path_template(path)
    if template is None:
        assert response.status_code == 404, f"{method} {path}: no route, yet {response.status_code}"
        assert_is_error(response, what=f"{method} {path} -> 404")
        return
    if not template.startswith(API_PREFIX):
        return  # /api/schema/ and /api/docs/ describe the API; they are not part of it
    if documented_operation(method, template) is None:
        # A method the route does not offer: only "method not allowed", in the error shape.
        assert response.status_code == 405, f"{method} {template} is undocumented, yet {response.status_code}"
        assert_is_error(response, what=f"{method} {template} -> 405")
        return
    assert_matches_schema(response, method, template)


class SchemaCheckedClient(APIClient):
    """An APIClient that sends JSON and validates every response under /api/ against the document.

    `SchemaCheckedClient(token)` sends `Authorization: Bearer <token>` with each request.
    """

    def __init__(self, token: str | None = None, **defaults):
        super().__init__(**defaults)
        self.default_format = "json"
        if token:
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def request(self, **kwargs):
        response = super().request(**kwargs)
        check_response(response)
        return response
