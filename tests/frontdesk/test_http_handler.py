"""HTTP over ASGI (messenger/http_handler.py): the whole middleware chain and the view in one
crossing to the request's thread, with every middleware still applied, and nothing of a served
request left in reference cycles for the garbage collector."""

import asyncio
import gc
import json

import pytest
from asgiref import sync
from asgiref.sync import sync_to_async

from tests import asgi
from tests.factories import direct_conversation, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)


async def asgi_get(path: str, *, token: str | None = None, query: str = "") -> tuple[int, dict, bytes]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    request = asgi.communicator(asgi.http_scope("GET", path, headers, query=query))
    await request.send_input({"type": "http.request", "body": b"", "more_body": False})
    return await asgi.response(request)


@pytest.fixture
def crossings(monkeypatch):
    """Counts the calls that hand work from the event loop to a thread."""
    counted = []
    original = sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        counted.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    return counted


async def test_a_history_page_crosses_to_its_thread_once_for_middleware_and_view(crossings):
    (alice, token), (bob, _) = await sync_to_async(user_with_token)(), await sync_to_async(user_with_token)()
    conversation = await sync_to_async(direct_conversation)(alice, bob)
    crossings.clear()

    status, headers, body = await asgi_get(f"/api/v1/conversations/{conversation.pk}/messages", token=token)

    assert status == 200, body
    assert json.loads(body) == {"results": [], "has_more": False}
    # The middleware all ran: security headers, clickjacking, the content security policy.
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in headers
    # Django's own handler crossed ~16 times here (each middleware hook); now the request_started
    # signal, the chain with the view, and the response's close().
    assert len(crossings) <= 3, crossings


async def test_errors_still_answer_json_naming_the_field():
    status, _, body = await asgi_get("/api/v1/conversations")
    assert (status, json.loads(body)["error"]["code"]) == (401, "not_authenticated")

    (alice, token), (bob, _) = await sync_to_async(user_with_token)(), await sync_to_async(user_with_token)()
    conversation = await sync_to_async(direct_conversation)(alice, bob)
    status, _, body = await asgi_get(f"/api/v1/conversations/{conversation.pk}/messages", token=token, query="limit=abc")
    assert (status, json.loads(body)["error"]["field"]) == (400, "limit")
    status, _, body = await asgi_get("/api/v1/conversations/999999/messages", token=token)
    assert (status, json.loads(body)["error"]["field"]) == (404, "conversation")


async def test_a_served_request_leaves_no_cycles_of_its_request_and_view_for_the_collector():
    (alice, token), (bob, _) = await sync_to_async(user_with_token)(), await sync_to_async(user_with_token)()
    conversation = await sync_to_async(direct_conversation)(alice, bob)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector would have freed lands in gc.garbage instead
    try:
        status, _, _ = await asgi_get(f"/api/v1/conversations/{conversation.pk}/messages", token=token)
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert status == 200
    # Each of these held a cycle (and everything hanging off it) until a young collection came
    # round, which on a busy server was the slowest 1% of requests.
    assert not left & {"ASGIRequest", "Request", "MessagesView", "FallbackStorage", "SessionStore"}, left


async def post_body(path: str, chunks: list[bytes], *, declared: int | None) -> tuple[int, dict, int]:
    """POST `chunks` as one body (declaring `declared` as its length, or nothing, as a chunked
    upload does): (status, error body, how many chunks the server took before answering)."""
    headers = [(b"content-type", b"multipart/form-data; boundary=XyZ")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    request = asgi.communicator(asgi.http_scope("POST", path, headers))
    taken = 0
    loop = asyncio.get_running_loop()
    for n, chunk in enumerate(chunks):
        await request.send_input({"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1})
        taken += 1
        # The application's turn: until it has read the chunk (then the client sends the next) or
        # answered, however long a loaded machine makes that (a fixed 50 ms each, 1 s in all, was
        # not always enough for the answer to come before the last chunk went).
        deadline = loop.time() + 30
        while not request.input_queue.empty() and request.output_queue.empty():
            assert loop.time() < deadline, "the application neither read the body nor answered"
            await asyncio.sleep(0.01)
        if not request.output_queue.empty():  # it has answered: the client stops sending
            break
    status, _, body = await asgi.response(request)
    return status, json.loads(body), taken


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
async def test_a_body_past_the_largest_any_request_may_carry_is_refused_as_it_comes(settings, declared):
    """Django reads a whole body before any view sees it: without a proxy that limits bodies, one
    request could fill the disk. Declared too large, it is refused before a byte is read; growing
    too large, as soon as it does."""
    settings.MESSENGER = {**settings.MESSENGER, "MAX_BODY_BYTES": 1024,
                          "MEDIA_MAX_BYTES": {kind: 1024 for kind in settings.MESSENGER["MEDIA_MAX_BYTES"]}}
    megabyte = b"x" * (1024 * 1024)
    chunks = [megabyte] * 20

    status, body, taken = await post_body("/api/v1/media", chunks, declared=len(megabyte) * 20 if declared else None)

    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert taken < len(chunks)
