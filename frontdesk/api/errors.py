"""One error shape for the whole REST API: {"error": {"code", "message", "field"?}}."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.defaults import bad_request, page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from broker import errors
from frontdesk.api.parsers import BodyTooLarge
from frontdesk.db import BUSY_MESSAGE, BUSY_RETRY_AFTER, no_connection_free

logger = logging.getLogger(__name__)

STATUS_BY_ERROR = {
    errors.InvalidInput: status.HTTP_400_BAD_REQUEST,
    errors.AuthenticationFailed: status.HTTP_401_UNAUTHORIZED,
    errors.Forbidden: status.HTTP_403_FORBIDDEN,
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.Conflict: status.HTTP_409_CONFLICT,
    errors.LengthRequired: status.HTTP_411_LENGTH_REQUIRED,
    errors.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    errors.RateLimited: status.HTTP_429_TOO_MANY_REQUESTS,
}

CODE_BY_DRF_ERROR = {
    exceptions.ParseError: "malformed_body",
    BodyTooLarge: "body_too_large",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",  # only the schema, which offers YAML and JSON, negotiates
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
}


def error_body(code: str, message: str, field: str | None = None, **extra) -> dict:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    return {"error": body}


def _first_validation_error(detail, prefix: str = "") -> tuple[str | None, str]:
    """The first (field, message) of a DRF ValidationError's nested detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = None if key == "non_field_errors" else f"{prefix}{key}"
            field, message = _first_validation_error(value, f"{name}." if name else prefix)
            return field or name, message
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    return None, str(detail)


def exception_handler(exc, context):
    if no_connection_free(exc):
        logger.warning("no database connection free in the pool: answered 503 busy")
        response = Response(error_body("busy", BUSY_MESSAGE,
                                       retry_after=BUSY_RETRY_AFTER), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(BUSY_RETRY_AFTER)
        return response
    if isinstance(exc, errors.BrokerError):
        code = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)
        response = Response(error_body(**exc.as_dict()), status=code)
        if isinstance(exc, errors.RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, errors.AuthenticationFailed):
            response["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE, seen by Django first
        exc = BodyTooLarge()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in CODE_BY_DRF_ERROR.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_validation_error(exc.detail)
        if field and message.startswith("This field"):
            message = f"{field}: {message}"
        response.data = error_body(code, message, field)
    else:
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


def json_not_found(request, exception=None):
    """JSON under /api/ (clients parse it), Django's page everywhere else (people read it)."""
    if not request.path.startswith("/api/"):
        return page_not_found(request, exception)
    return JsonResponse(error_body("not_found", f"Nothing at {request.path}."), status=404)


def json_bad_request(request, exception=None):
    """Requests Django refuses before any view (a disallowed Host, say): JSON under /api/ too."""
    if not request.path.startswith("/api/"):
        return bad_request(request, exception)
    return JsonResponse(error_body("invalid", "Bad request."), status=400)


def json_server_error(request):
    return JsonResponse(error_body("server_error", "Something went wrong on our side; it has been logged."), status=500)
