"""Uploading media (multipart) and downloading it, with HTTP Range so players can seek.

Django's FileResponse has no Range support and the static-file servers that do (WhiteNoise,
nginx's X-Accel) would bypass the per-file authorization, so `ranged_response` is a small
single-range implementation (RFC 9110 §14): `bytes=a-b`, `bytes=a-` and `bytes=-n`; a request with
several ranges gets the whole file (200), which the RFC allows; an unsatisfiable one gets 416 with
`Content-Range: bytes */size`. It reads through the storage API, so it works on any backend.
"""

import re

from django.core.files.storage import default_storage
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from broker import events
from broker.errors import InvalidInput, NotFound
from broker.services import media as media_service
from frontdesk.api import serializers as s
from frontdesk.api.views import ERRORS, validated

CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries, headers and the `kind` field
RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

FILE_RESPONSES = {
    (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole file, as its MIME type."),
    (206, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The part asked for with Range; see Content-Range."),
    416: OpenApiResponse(s.ErrorSchema, description="The Range lies outside the file."),
}


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams the file to a temporary file (never memory) and stops at the largest media limit,
    for bodies whose length was not declared up front."""

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > media_service.largest_upload():
            self.file.close()  # the temporary file goes with it
            raise media_service.too_large()
        return super().receive_data_chunk(raw_data, start)


class AnyAccept(BaseContentNegotiation):
    """Downloads answer whatever the client accepts (an <img> asks for image/*); errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class RangeNotSatisfiable(InvalidInput):
    code = "range_not_satisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single satisfiable range, or None for the whole file."""
    if not header:
        return None
    match = RANGE.match(header)
    if match is None:
        return None  # several ranges or another unit: the whole file
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"The file has {size} bytes.", field="Range")
        return max(size - n, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored, as the RFC says
    end = int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(f"The file has {size} bytes.", field="Range")
    return start, min(end, size - 1)


def _stream(name: str, start: int, length: int):
    with default_storage.open(name, "rb") as handle:
        if start:
            handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


def ranged_response(request, *, name: str, size: int, content_type: str, etag: str, disposition: str):
    if_range = request.headers.get("If-Range")
    header = request.headers.get("Range") if not if_range or if_range.strip('"') == etag else None
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        response = Response({"error": exc.as_dict()}, status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if span is None:
        start, length, code = 0, size, status.HTTP_200_OK
    else:
        start, length, code = span[0], span[1] - span[0] + 1, status.HTTP_206_PARTIAL_CONTENT
    response = StreamingHttpResponse(_stream(name, start, length), status=code, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{etag}"'
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["Content-Disposition"] = disposition
    if code == status.HTTP_206_PARTIAL_CONTENT:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return response


class MediaUploadView(APIView):
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (the session's CSRF check reads request.POST).
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        declared = request.META.get("CONTENT_LENGTH")
        if declared and declared.isdigit() and int(declared) > media_service.largest_upload() + MULTIPART_OVERHEAD:
            raise media_service.too_large()  # refused before the body is read
        super().initial(request, *args, **kwargs)

    @extend_schema(
        tags=["media"], request={"multipart/form-data": s.MediaUploadRequest},
        responses={201: s.MediaSchema, **ERRORS},
        description=(
            "Upload a photo, video, voice message or document, then send it with POST messages "
            "(media_id, optional text as caption). The type is decided from the content: image (JPEG, PNG, "
            "WebP), video (MP4, WebM), voice (Ogg/Opus, WebM/Opus, MP4/AAC), document (anything). A file over "
            "its kind's limit is refused with 413 too_large; content that is not of the declared kind with "
            "400 (field file). Images are re-encoded without metadata and get a thumbnail."
        ),
    )
    def post(self, request):
        data = validated(s.MediaUploadRequest, request.data)
        upload = data["file"]
        try:
            media = media_service.upload(uploader=request.user, file=upload, kind=data.get("kind"))
        finally:
            upload.close()  # a temporary file goes now, whatever happened
        return Response(events.media_payload(media), status=status.HTTP_201_CREATED)


def _download(request, media_id: int, *, thumbnail: bool):
    media = media_service.readable_media(user=request.user, media_id=media_id)
    if thumbnail:
        if not media.thumbnail:
            raise NotFound(f"Media {media.pk} has no thumbnail.", field="media")
        name, content_type = media.thumbnail.name, "image/jpeg"
        size = default_storage.size(name)
        etag = f"{media.sha256}-thumbnail"
    else:
        name, content_type, size, etag = media.file.name, media.mime_type, media.size, media.sha256
    inline = media.kind in (media.Kind.IMAGE, media.Kind.VIDEO, media.Kind.VOICE) or thumbnail
    disposition = "inline" if inline else f'attachment; filename="media-{media.pk}"'
    return ranged_response(request, name=name, size=size, content_type=content_type, etag=etag,
                           disposition=disposition)


class MediaDownloadView(APIView):
    content_negotiation_class = AnyAccept

    @extend_schema(tags=["media"], responses={**FILE_RESPONSES, **ERRORS},
                   description="The file, for its uploader and the members of conversations where it was sent "
                               "(anyone else gets 404). Supports Range (one range) for seeking.")
    def get(self, request, media_id: int):
        return _download(request, media_id, thumbnail=False)


class MediaThumbnailView(APIView):
    content_negotiation_class = AnyAccept

    @extend_schema(tags=["media"], responses={**FILE_RESPONSES, **ERRORS},
                   description="A JPEG thumbnail of an image, for the same people as the file.")
    def get(self, request, media_id: int):
        return _download(request, media_id, thumbnail=True)

