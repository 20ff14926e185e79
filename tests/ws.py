"""Helpers for websocket tests: real connections through the project's ASGI application."""

import asyncio
import itertools
import json
from collections import deque
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.test import Client as HttpClient
from django.utils import timezone

from broker.services import accounts
from messenger.asgi import application
from storage.models import User
from tests.factories import PASSWORD, direct_conversation, user_with_token

_client_ids = itertools.count(1)


# A frame the server answers with an `error` to this connection only. The consumer handles one
# event at a time, so that answer comes after the whole connect handler (joining groups, presence,
# catch-up) has run: without this wait a message sent right after connecting can arrive twice,
# once in catch-up and once live (clients deduplicate; tests want a deterministic stream).
_READY_PROBE = {"type": "test.ready?", "ref": "test-ready-probe"}


class Client:
    """One connected device, speaking the JSON protocol."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator
        self._buffered: deque[dict] = deque()  # outputs read while waiting for the ready probe

    async def _wait_ready(self, timeout: float = 3):
        await self.send(**_READY_PROBE)
        while True:
            output = await self.communicator.receive_output(timeout=timeout)
            if output["type"] == "websocket.send":
                event = json.loads(output["text"])
                if event["type"] == "error" and event.get("ref") == _READY_PROBE["ref"]:
                    return
            self._buffered.append(output)
            if output["type"] == "websocket.close":  # refused: the server ignores the probe
                return

    async def _output(self, timeout: float) -> dict:
        if self._buffered:
            return self._buffered.popleft()
        return await self.communicator.receive_output(timeout=timeout)

    async def send(self, **frame):
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str):
        await self.communicator.send_to(text_data=text)

    async def send_bytes(self, data: bytes):
        await self.communicator.send_to(bytes_data=data)

    async def receive(self, timeout: float = 3) -> dict:
        output = await self._output(timeout)
        assert output["type"] == "websocket.send", f"expected an event, got {output}"
        return json.loads(output["text"])

    async def receive_type(self, event_type: str, timeout: float = 3) -> dict:
        """The next event of `event_type`, skipping others (presence, typing...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.receive(timeout=max(0.01, deadline - loop.time()))
            if event["type"] == event_type:
                return event

    async def receive_types(self, *event_types: str, count: int, timeout: float = 3) -> list[dict]:
        """The next `count` events of the given types, in arrival order, skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found = []
        while len(found) < count:
            event = await self.receive(timeout=max(0.01, deadline - loop.time()))
            if event["type"] in event_types:
                found.append(event)
        return found

    async def receive_new(self, seq: int, timeout: float = 3) -> dict:
        """The `message.new` event of the message numbered `seq`, skipping every other event."""
        while True:
            event = await self.receive_type("message.new", timeout=timeout)
            if event["message"]["seq"] == seq:
                return event

    async def receive_until_new(self, message: dict, timeout: float = 3) -> list[dict]:
        """Every event up to and including the `message.new` of `message`.

        The channel layer keeps each connection's events in order, so a message published after
        something else works as a barrier: whatever that something would have caused is in the list.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        events = []
        while not events or events[-1]["type"] != "message.new" or events[-1]["message"]["id"] != message["id"]:
            events.append(await self.receive(timeout=max(0.01, deadline - loop.time())))
        return events

    async def receive_close(self, timeout: float = 3) -> int:
        """The close code the server ends the connection with (after any events still queued)."""
        while True:
            output = await self._output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)

    async def send_message(self, conversation: int, text: str = "hello", *, client_id: str | None = None) -> dict:
        """Send a text message and wait for its `message.sent`; returns the stored message."""
        client_id = client_id or f"c{next(_client_ids)}"
        await self.send(type="message.send", client_id=client_id, conversation=conversation, text=text)
        sent = await self.receive_type("message.sent")
        assert sent["client_id"] == client_id, sent
        return sent["message"]

    async def nothing_more(self, timeout: float = 0.2) -> bool:
        return not self._buffered and await self.communicator.receive_nothing(timeout=timeout)

    async def drain(self, timeout: float = 0.2) -> list[dict]:
        events = []
        while not await self.nothing_more(timeout=timeout):
            events.append(await self.receive())
        return events

    @property
    def is_open(self) -> bool:
        return not self.communicator.future.done()

    async def close(self):
        # The server may have closed and finished already (logout, bad token): nothing to do then.
        if self.is_open:
            await self.communicator.disconnect()


async def connect(token: str | None = None, *, headers: list | None = None, path: str | None = None,
                  app=application) -> Client:
    url = path or (f"/ws/v1/?token={token}" if token else "/ws/v1/")
    communicator = WebsocketCommunicator(app, url, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    client = Client(communicator)
    await client._wait_ready()
    return client


@pytest.fixture
async def sockets():
    """`await sockets(token)` opens a device connection that is closed when the test ends.

    Import it into a test module (`from tests.ws import sockets  # noqa: F401`) to use it.
    """
    opened: list[Client] = []

    async def open_socket(token: str | None = None, **kwargs) -> Client:
        client = await connect(token, **kwargs)
        opened.append(client)
        return client

    yield open_socket
    for client in opened:
        await client.close()
    # Channels' test communicator turns the consumer's connection cleanup into a no-op while a test
    # waits for output, so the worker thread may still hold a connection: PostgreSQL would then
    # refuse to drop the test database at the end of the run.
    await database_sync_to_async(connections.close_all)()


async def people(count: int) -> list[tuple[User, str]]:
    """`count` users, each logged in on one device: [(user, token), ...]."""
    return await database_sync_to_async(lambda: [user_with_token() for _ in range(count)])()


async def two_in_a_chat(sockets) -> tuple[User, User, object, Client, Client]:
    """Two people in a direct chat, each connected on one device (`sockets` is the fixture):
    (alice, bob, chat, alice's socket, bob's socket)."""
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    return alice, bob, chat, await sockets(alice_token), await sockets(bob_token)


async def exchange(sender: Client, recipient: Client, conversation: int, texts) -> list[dict]:
    """`sender` sends each text and `recipient` gets it live; the messages as sent."""
    messages = []
    for text in texts:
        messages.append(await sender.send_message(conversation, text))
        assert (await recipient.receive_new(messages[-1]["seq"]))["message"]["text"] == text
    return messages


async def another_device(user: User) -> str:
    """Log `user` in on one more device; returns its token."""
    _, token = await database_sync_to_async(accounts.login)(
        phone_number=user.phone_number, password=PASSWORD, device_name="second"
    )
    return token


def browser_login(user: User) -> tuple[list, str]:
    """Log `user` in as a browser does: the headers a page of ours opens its websocket with (the
    session cookie, our origin), and the session's key."""
    _, headers, session_key = logged_in_browser(user)
    return headers, session_key


def logged_in_browser(user: User) -> tuple[HttpClient, list, str]:
    """`browser_login`, with the browser too, to make the page's requests with its session cookie
    (sync: call it in a thread)."""
    browser = HttpClient()
    browser.force_login(user)
    session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return browser, [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()),
                     (b"origin", b"http://localhost:8000")], session_key


SESSION_ENDINGS = ["logout", "expiry", "password change elsewhere", "deactivation", "tampering"]


def end_browser_session(user: User, session_key: str, how: str) -> None:
    """End a browser session behind the channel layer's back (no `session.revoked` is published),
    in one of the SESSION_ENDINGS."""
    if how == "logout":
        Session.objects.filter(session_key=session_key).delete()
    elif how == "expiry":
        Session.objects.filter(session_key=session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    elif how == "password change elsewhere":  # every other session of the user ends with it
        user.set_password("a-brand-new-password-7")
        user.save(update_fields=["password"])
    elif how == "deactivation":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif how == "tampering":  # the signed data no longer matches its signature
        row = Session.objects.get(session_key=session_key)
        Session.objects.filter(pk=session_key).update(session_data=row.session_data[:-3] + "abc")
    else:
        raise ValueError(how)


def db(function):
    """Run a sync function (a service, a query) from an async test, as the consumer does."""
    return database_sync_to_async(function)


async def simulate_restart(*clients: Client) -> None:
    """Every connection drops and the channel layer forgets its groups and queued events.

    Only what the database holds survives, as after a restart of all server processes.
    """
    for client in clients:
        await client.close()
    layer = get_channel_layer()
    await layer.flush()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()
    channel_layers.backends.clear()


def drop_other_database_connections() -> int:
    """What a PostgreSQL restart (or a pooler's idle timeout) does to a server's connections: every
    one to the test database but the caller's own is terminated. Their number."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return len(cursor.fetchall())
