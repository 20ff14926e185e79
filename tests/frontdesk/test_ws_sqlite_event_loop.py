"""On SQLite, a websocket's short database calls run on the event loop itself (frontdesk/db.py).

What that must not change: messages, receipts and typing flow as with the calls in the database
thread; a writer holding SQLite's lock elsewhere delays a message but never loses or fails it; and
Django still refuses database work done on the loop by mistake.
"""

import asyncio
import sqlite3
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection

from broker.services import send
from frontdesk import db as frontdesk_db
from storage import sqlite_wal
from storage.models import Message, User
from tests.factories import direct_conversation
from tests.ws import db, exchange, people, sockets, two_in_a_chat  # noqa: F401  (sockets is a fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="where SQLite's calls run; PostgreSQL's use a thread pool"),
]


@pytest.fixture(params=[True, False], ids=["on-the-loop", "in-the-thread"])
def calls_on_loop(request, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SQLITE_ON_EVENT_LOOP": request.param}
    return request.param


async def test_messages_receipts_and_typing_flow_wherever_the_calls_run(calls_on_loop, sockets):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    await exchange(a, b, chat.pk, ("one", "two", "three"))
    await b.send(type="ack", conversation=chat.pk, seq=3)
    assert (await a.receive_type("message.status"))["status"] == "delivered"
    await b.send(type="typing", conversation=chat.pk)
    assert (await a.receive_type("typing"))["user"] == bob.pk
    assert await db(lambda: list(Message.objects.filter(conversation=chat).values_list("text", flat=True)
                                 .order_by("seq")))() == ["one", "two", "three"]
    if calls_on_loop:  # SQLite's checkpoints are then left to a thread (storage/sqlite_wal.py), not to its commits
        assert sqlite_wal.checkpointed_in_background(connection.settings_dict["NAME"])


def _hold_write_lock() -> sqlite3.Connection:
    """Another connection (an HTTP request's thread, the task worker) in the middle of a write."""
    holder = sqlite3.connect(connection.settings_dict["NAME"], check_same_thread=False, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_message_sent_while_another_connection_writes_is_stored_when_the_lock_is_free(calls_on_loop, sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)

    holder = _hold_write_lock()
    # Released from another thread: on the loop, the call waits for the lock with the loop stopped.
    release = threading.Timer(0.3, holder.commit)
    release.start()
    try:
        await a.send(type="message.send", client_id="while-locked", conversation=chat.pk, text="patience")
        sent = await a.receive_type("message.sent", timeout=5)
    finally:
        release.join()
        holder.close()

    assert sent["client_id"] == "while-locked"
    assert (await b.receive_new(sent["message"]["seq"]))["message"]["text"] == "patience"
    assert await db(lambda: Message.objects.filter(client_id="while-locked").count())() == 1


async def test_database_work_on_the_loop_by_mistake_is_still_refused(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    await a.send_message(chat.pk, "a call ran on the loop")

    with pytest.raises(SynchronousOnlyOperation):
        User.objects.count()


async def test_a_message_is_written_to_its_recipients_by_the_time_the_send_returns(sockets, settings):
    """The call's events go out as it returns (broker.publish.send_collected), not a turn of the
    event loop later: the recipient's frame is written before the sender is answered, with no wait."""
    settings.MESSENGER = {**settings.MESSENGER, "SQLITE_ON_EVENT_LOOP": True}
    (alice, _), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)
    assert await b.nothing_more()

    message, created = await frontdesk_db.database_sync_to_async(send.send_message)(
        sender=alice, conversation_id=chat.pk, client_id="inline", text="no waiting")
    assert created and not b.communicator.output_queue.empty()  # no turn of the loop since the call
    assert (await b.receive_new(message.seq))["message"]["text"] == "no waiting"


async def test_a_socket_with_nothing_to_catch_up_on_connects_while_the_database_thread_is_busy(sockets):
    """Catch-up may take long, so it runs in the database thread; but whether there is any is a
    short question, asked on the loop: a reconnecting user with nothing missed does not queue
    behind a long call there (another user's catch-up, say)."""
    (alice, alice_token), (bob, bob_token) = await people(2)
    await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)(10))
    try:
        await sockets(alice_token)
        assert (await b.receive_type("presence"))["online"] is True
        assert not busy.done()
    finally:
        release.set()
        await busy
