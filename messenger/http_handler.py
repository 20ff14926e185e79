"""Django's ASGI handler, with the middleware and the view run in one pass in the request's thread.

Django's own handler loads the middleware chain in async mode. Every middleware built on
MiddlewareMixin (all of Django's, django-csp's) then runs each of its hooks through its own
`sync_to_async` call, and a sync-only one (WhiteNoise) sends the rest of the chain back to the
event loop with `async_to_sync`: a REST request crossed between the event loop and its thread
about sixteen times, each crossing a wake-up of a thread (0.1-0.2 ms on a small virtual machine).
Our views are all synchronous, so the chain gains nothing from async mode: loaded in sync mode it
runs exactly as under WSGI, in one crossing: a history page's median fell by a fifth to a third
(docs/performance.md, change 43). Django ticket #37177 is about the same cost; until Django's own
middleware says it is sync-only this subclass does it for our stack.

Everything else is Django's: reading the body, the request_started/finished signals, streaming
the response (asynchronous iterators included, as media downloads use), disconnects.

A request also leaves reference cycles behind: the request and its messages storage, session and
`auser`, DRF's request, its parser context and the view, the response's renderer context. Only
the cycle collector frees them, ~150 objects a request, in one young collection every ~90
requests that took 7-10 ms here: the p99 of history pages (docs/performance.md, change 45). Once
the response is closed (its body sent, streamed ones included) nothing reads those objects again,
so their attributes are cleared and reference counting frees most of it at once, in the
request's own thread.
"""

import functools
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

# Past the largest media upload: room for its form around it, and enough that the views' own
# checks (which name the media kind's limit, broker/media_http.py) answer every body near a limit.
SLACK = 1024 * 1024


def largest_body() -> int:
    """The most any request may carry: the largest media upload, with slack (REST bodies are
    smaller still, and refused past MAX_BODY_BYTES by their parser)."""
    return max(*settings.MESSENGER["MEDIA_MAX_BYTES"].values(), settings.MESSENGER["MAX_BODY_BYTES"]) + SLACK


class _BodyTooLarge(Exception):
    pass


def _declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _counting(receive, limit: int):
    """`receive`, refusing (`_BodyTooLarge`) a body that grows past `limit` as it arrives."""
    received = 0

    async def counted():
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _BodyTooLarge
        return message

    return counted


async def _send_too_large(send, limit: int) -> None:
    body = json.dumps({"error": {"code": "body_too_large",
                                 "message": f"Request bodies are limited to {limit} bytes."}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _clear_request_objects(request, response) -> None:
    context = getattr(response, "renderer_context", None) or {}  # DRF's responses
    for obj in (context.get("view"), context.get("request"), request):
        if obj is not None:
            obj.__dict__.clear()
    if context:
        response.renderer_context = None


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def handle(self, scope, receive, send):
        # Django reads the whole body (to a temporary file past 2.5 MB) before any view can look
        # at its length: without a proxy limiting bodies (nginx's client_max_body_size), a client
        # could fill the disk with one request. A body declared, or growing, past the largest any
        # request may carry is refused as it comes.
        limit = largest_body()
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _send_too_large(send, limit)
        try:
            await super().handle(scope, _counting(receive, limit), send)
        except _BodyTooLarge:
            await _send_too_large(send, limit)

    def get_response(self, request):
        response = super().get_response(request)
        # The last of the response's closers, which run as it is closed, before request_finished.
        response._resource_closers.append(functools.partial(_clear_request_objects, request, response))
        return response

    async def get_response_async(self, request):
        # thread_sensitive: the request's own thread (ThreadSensitiveContext), where Django's
        # signals and the response's close() run too, so its database connections are the ones
        # closed when it ends (frontdesk/request_connections.py).
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
