"""Media files over HTTP, for every API that uploads or serves them (the client API, the developer
API): an upload handler that stops at the largest media limit, and downloads with HTTP Range.

Django's FileResponse has no Range support and the static-file servers that do (WhiteNoise,
nginx's X-Accel) would bypass the per-file authorization, so `ranged_response` is a small
single-range implementation (RFC 9110 §14): `bytes=a-b`, `bytes=a-` and `bytes=-n`; a request with
several ranges gets the whole file (200), which the RFC allows; an unsatisfiable one gets 416 with
`Content-Range: bytes */size`. It reads through the storage API, so it works on any backend.

Under an ASGI server a download is sent as it is read, a chunk at a time: given the usual
synchronous iterator, Django's ASGI handler reads the whole file into memory before it sends a
byte (up to 100 MB a document, per download in flight). And the request gives its database
connection back before the first byte, not after the last, so slow downloads do not hold the
connection pool (MESSENGER_DB_POOL_SIZE).

Who may read which file is the services' question (broker.services.media); this module only
moves bytes.
"""

import re
import weakref

from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import JsonResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from broker.errors import InvalidInput, LengthRequired, NotFound
from broker.services import media as media_service
from storage.models import Media

CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries, headers and its small fields
RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams the file to a temporary file (never memory) and stops at the largest media limit as
    it goes: the declared length (check_declared_length) allows the form's own overhead on top of
    the limit, which the file itself may not use."""

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > media_service.largest_upload():
            self.file.close()  # the temporary file goes with it
            raise media_service.too_large()
        return super().receive_data_chunk(raw_data, start)


def check_declared_length(request) -> None:
    """Refuse an upload whose length is not declared (411 length_required) or is over any media
    limit (413 too_large), before the form is parsed.

    Django parses a multipart body only up to its Content-Length and takes a body without one for
    empty, so a chunked upload (Transfer-Encoding: chunked, as a client streaming a file may send
    straight to uvicorn) would be told its file is missing. A proxy that buffers the body (nginx by
    default) sends the length on, so clients behind it are never refused."""
    declared = request.META.get("CONTENT_LENGTH")
    if not declared:
        raise LengthRequired("Send the upload with a Content-Length header; a body of undeclared length "
                             "(Transfer-Encoding: chunked) is not accepted.", field="Content-Length")
    if declared.isdigit() and int(declared) > media_service.largest_upload() + MULTIPART_OVERHEAD:
        raise media_service.too_large()


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


def _open(name: str, media_id: int):
    """The stored file, opened before the response starts: one deleted since the caller's access
    check (its message deleted for everyone or taken down meanwhile) is 404, as a moment later,
    rather than a 500 or a download cut short after its 200. Once open, it reads to its end."""
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError:
        raise NotFound(f"No media {media_id}.", field="media") from None


class _Chunks:
    """`length` bytes of the opened `handle` from `start`, a chunk at a time; `close` (called by the
    response once sent, or dropped) closes the file, read or not."""

    def __init__(self, handle, start: int, length: int):
        self.handle, self.remaining = handle, length
        # A response dropped unsent (its client gone before the first byte) lets go of the file too.
        self.close = weakref.finalize(self, handle.close)
        if start:
            handle.seek(start)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        chunk = self.handle.read(min(CHUNK, self.remaining)) if self.remaining > 0 else b""
        if not chunk:
            self.close()
            raise StopIteration
        self.remaining -= len(chunk)
        return chunk


async def _read_in_a_thread(chunks):
    """`chunks` (a synchronous iterator that reads a file) as an asynchronous one: each chunk read
    in a thread, so the event loop sends one while the next is read and never waits on the disk."""
    next_chunk = sync_to_async(next, thread_sensitive=False)
    try:
        while (chunk := await next_chunk(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=False)()


def _served_over_asgi(request) -> bool:
    return isinstance(getattr(request, "_request", request), ASGIRequest)


def ranged_response(request, *, handle, size: int, content_type: str, etag: str, disposition: str):
    """The opened stored file (or the one range of it the request asks for), streamed; closed once sent."""
    if_range = request.headers.get("If-Range")
    header = request.headers.get("Range") if not if_range or if_range.strip('"') == etag else None
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        handle.close()
        response = JsonResponse({"error": exc.as_dict()}, status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if span is None:
        start, length, code = 0, size, 200
    else:
        start, length, code = span[0], span[1] - span[0] + 1, 206
    chunks = _Chunks(handle, start, length)
    if _served_over_asgi(request):
        chunks = _read_in_a_thread(chunks)
        # The request's own thread (Django's ASGI handler gives each request one) is done with the
        # database; what it holds would otherwise wait for the last byte (frontdesk/request_connections.py).
        if not any(db.in_atomic_block for db in connections.all(initialized_only=True)):
            connections.close_all()
    response = StreamingHttpResponse(chunks, status=code, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{etag}"'
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["Content-Disposition"] = disposition
    if code == 206:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return response


def media_response(request, media: Media, *, thumbnail: bool = False):
    """A media file (or its JPEG thumbnail) for someone the caller has checked may read it; photos,
    videos and voice messages inline, documents as attachments."""
    if thumbnail:
        if not media.thumbnail:
            raise NotFound(f"Media {media.pk} has no thumbnail.", field="media")
        handle, content_type = _open(media.thumbnail.name, media.pk), "image/jpeg"
        size = handle.size
        etag = f"{media.sha256}-thumbnail"
    else:
        handle, content_type, size, etag = _open(media.file.name, media.pk), media.mime_type, media.size, media.sha256
    inline = media.kind in (Media.Kind.IMAGE, Media.Kind.VIDEO, Media.Kind.VOICE) or thumbnail
    # A document is saved under its own name (RFC 6266: an ASCII fallback and the UTF-8 name).
    disposition = "inline" if inline else content_disposition_header(True, media.name or f"media-{media.pk}")
    return ranged_response(request, handle=handle, size=size, content_type=content_type, etag=etag,
                           disposition=disposition)
