"""The request body parser of the REST API: DRF's JSON parsing, bounded.

DRF reads the body from the request stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, and
lets a RecursionError from deeply nested JSON escape as a server error. Here the body is read up
to `MAX_BODY_BYTES` (a larger one is refused with 413 `body_too_large`) and nesting that is too
deep is a `malformed_body` like any other bad JSON.
"""

from django.conf import settings
from rest_framework import exceptions, parsers, status
from rest_framework.utils import json


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "body_too_large"


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MESSENGER["MAX_BODY_BYTES"]
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding))  # DRF's: NaN and Infinity are not JSON
        except (ValueError, LookupError) as exc:  # bad JSON, bad UTF-8, an unknown charset
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc
