"""On PostgreSQL, a websocket's sends, receipts and typing notices run their one statement on the
event loop itself (storage/async_sql.py); everything else, and the rare cases of those, in the
database threads.

What that must not change: messages, receipts and their announcements flow as through the threads;
refusals answer as before; apps' bots still hear of their conversations. What it buys a user: a
slow call in the database threads (a long catch-up) no longer holds up other people's messages.
"""

import threading

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from broker import events
from broker.services import accounts, editing, receipts, send, sessions
from broker.services import people as people_service
from developer_api.models import OptIn, OutboundMessage
from developer_api.services import messaging
from frontdesk import db as frontdesk_db
from storage import async_sql
from storage.models import Membership, Message, User
from tests.developer_api.helpers import make_app, make_key, opted_in_user
from tests.factories import PASSWORD, direct_conversation, group_conversation
from tests.ws import SESSION_ENDINGS, another_device, browser_login, db, drop_other_database_connections, end_browser_session, exchange, people, sockets, two_in_a_chat  # noqa: F401  (sockets is a fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the event loop's own connections are PostgreSQL's"),
]


@pytest.fixture(params=[True, False], ids=["on-the-loop", "in-the-threads"])
def statements_on_loop(request, settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": request.param}
    return request.param


async def test_messages_and_receipts_flow_wherever_the_statements_run(statements_on_loop, sockets):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    await exchange(a, b, chat.pk, ("one", "two", "three"))
    await b.send(type="ack", conversation=chat.pk, seq=3)
    delivered = await a.receive_type("message.status")
    assert (delivered["status"], delivered["seq"], delivered["user"]) == ("delivered", 3, bob.pk)
    await b.send(type="read", conversation=chat.pk, seq=2)
    read = await a.receive_type("message.status")
    assert (read["status"], read["seq"]) == ("read", 2)
    reply = await b.send_message(chat.pk, "four")  # reading up to 4 of what Alice sent, by replying
    assert (await a.receive_new(reply["seq"]))["message"]["text"] == "four"
    assert (await a.receive_type("message.status"))["status"] == "read"

    assert await db(lambda: list(Message.objects.filter(conversation=chat).order_by("seq")
                                 .values_list("seq", "text")))() == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]
    assert await db(lambda: Membership.objects.get(conversation=chat, user=bob).read_seq)() == 4
    assert await db(lambda: Membership.objects.get(conversation=chat, user=alice).read_seq)() == 3  # 4 not acked yet


async def test_refusals_answer_as_through_the_threads(statements_on_loop, sockets, settings):
    (alice, alice_token), (bob, bob_token), (carol, _) = await people(3)
    chat = await db(direct_conversation)(alice, bob)
    elsewhere = await db(direct_conversation)(bob, carol)
    a = await sockets(alice_token)

    first = await a.send_message(chat.pk, "once", client_id="retry-me")
    await a.send(type="message.send", client_id="retry-me", conversation=chat.pk, text="once")
    again = await a.receive_type("message.sent")
    assert (again["message"]["id"], again["message"]["status"]) == (first["id"], "sent")

    await a.send(type="message.send", client_id="x1", conversation=elsewhere.pk, text="let me in")
    error = await a.receive_type("error")
    assert (error["code"], error["field"], error["ref"]) == ("not_found", "conversation", "x1")

    await a.send(type="ack", conversation=chat.pk, seq=99)
    error = await a.receive_type("error")
    assert (error["code"], error["field"]) == ("invalid", "seq")

    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 1}
    await a.send(type="message.send", client_id="x2", conversation=chat.pk, text="too fast")
    assert (await a.receive_type("error"))["code"] == "rate_limited"
    assert await db(lambda: Message.objects.filter(conversation=chat).count())() == 1


async def test_a_logged_out_device_is_closed_and_stores_nothing(statements_on_loop, sockets):
    (alice, alice_token), (bob, _) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    await db(lambda: alice.devices.all().delete())()

    await a.send(type="message.send", client_id="after-logout", conversation=chat.pk, text="still here?")
    assert (await a.receive_type("session.revoked"))["type"] == "session.revoked"
    assert await a.receive_close() == 4001
    assert not await db(lambda: Message.objects.filter(client_id="after-logout").exists())()


async def test_busy_database_threads_do_not_hold_up_messages_and_receipts(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    pool = frontdesk_db._executor()
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        message = await a.send_message(chat.pk, "past the queue")
        assert (await b.receive_new(message["seq"]))["message"]["text"] == "past the queue"
        await b.send(type="ack", conversation=chat.pk, seq=message["seq"])
        assert (await a.receive_type("message.status"))["status"] == "delivered"
        assert not any(job.done() for job in busy)  # all of it happened while the threads were taken
    finally:
        release.set()


async def test_an_apps_bot_still_hears_of_messages_and_receipts(settings, sockets):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    app = await db(make_app)()
    key, _ = await db(make_key)(app)
    user = await db(opted_in_user)(app)
    _, token = await db(accounts.login)(phone_number=user.phone_number, password=PASSWORD, device_name="phone")
    outbound, _ = await db(messaging.send_message)(api_key=key, to=user.phone_number, message_type="text",
                                                   text={"body": "your code is 1234"})
    device = await sockets(token)

    await device.send(type="ack", conversation=outbound.conversation_id, seq=1)
    await device.send_message(outbound.conversation_id, "thanks")
    assert await db(lambda: OutboundMessage.objects.get(pk=outbound.pk).reported_status)() == "read"

    (stranger, stranger_token), = await people(1)
    chat = await db(direct_conversation)(stranger, app.bot)
    assert not await db(lambda: OptIn.objects.filter(app=app, user=stranger).exists())()
    await (await sockets(stranger_token)).send_message(chat.pk, "hello app")
    assert await db(lambda: OptIn.objects.filter(app=app, user=stranger, source=OptIn.Source.MESSAGED).exists())()


async def test_replies_flow_and_are_refused_wherever_the_statements_run(statements_on_loop, sockets):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    question = await a.send_message(chat.pk, "lunch?")

    await b.send(type="message.send", client_id="r1", conversation=chat.pk, text="yes", reply_to=question["seq"])
    reply = (await b.receive_type("message.sent"))["message"]
    assert (await a.receive_new(reply["seq"]))["message"]["reply_to"] == question["seq"]

    await b.send(type="message.send", client_id="r2", conversation=chat.pk, text="hm", reply_to=99)
    error = await b.receive_type("error")
    assert (error["code"], error["field"], error["ref"]) == ("not_found", "reply_to", "r2")
    assert await db(lambda: list(Message.objects.filter(conversation=chat).order_by("seq")
                                 .values_list("seq", "reply_to_seq")))() == [(1, None), (2, 1)]


async def test_messages_sent_wherever_the_statements_run_are_edited_alike(statements_on_loop, sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    typo = await a.send_message(chat.pk, "helo")
    assert typo["edited_at"] is None  # the send's payload has it, with no query for it

    edited, notice = await db(editing.edit_message)(user=alice, conversation_id=chat.pk, seq=typo["seq"], text="hello")

    assert (edited.text, notice.event) == ("hello", {"action": "message_edited", "seq": typo["seq"], "by": alice.pk})
    assert (await a.receive_new(notice.seq))["message"]["event"]["action"] == "message_edited"
    b = await sockets(bob_token)  # offline until now: catches up with the new text
    caught_up = {e["message"]["seq"]: e["message"] for e in await b.drain() if e["type"] == "message.new"}
    assert (caught_up[typo["seq"]]["text"], caught_up[typo["seq"]]["edited_at"]) == ("hello", events.timestamp(edited.edited_at))


async def test_a_reply_is_stored_on_the_loop_and_one_that_may_not_quote_is_left_to_the_threads(settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, _), (bob, _) = await people(2)
    group = await db(group_conversation)(alice, bob)  # seq 1: the notice of its making
    device_id = await db(lambda: bob.devices.get().pk)()
    await db(lambda: send.send_message(sender=alice, conversation_id=group.pk, client_id="q", text="lunch?"))()

    for reply_to in (1, 3, "x"):  # a system notice, no message, not a seq: stored nothing
        assert await send.send_text_on_loop(sender=bob, conversation_id=group.pk, client_id="r", text="hm",
                                            reply_to=reply_to, device_id=device_id) is None
    assert await db(lambda: Message.objects.filter(conversation=group).count())() == 2

    sent = await send.send_text_on_loop(sender=bob, conversation_id=group.pk, client_id="r", text="yes",
                                        reply_to=2, device_id=device_id)
    assert sent is not None and sent[1] and (sent[0].seq, sent[0].reply_to_seq) == (3, 2)
    assert await db(lambda: Message.objects.get(conversation=group, seq=3).reply_to_seq)() == 2


async def test_the_loops_paths_decline_what_they_do_not_handle(settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, _), (bob, _) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    device_id = await db(lambda: alice.devices.get().pk)()

    assert await send.send_text_on_loop(sender=alice, conversation_id=chat.pk, client_id="m", text="hi",
                                        media_id=7, device_id=device_id) is None  # media
    assert await send.send_text_on_loop(sender=alice, conversation_id=chat.pk, client_id="m", text="  ",
                                        device_id=device_id) is None  # bad input
    assert await send.send_text_on_loop(sender=alice, conversation_id=chat.pk, client_id="m", text="hi",
                                        device_id=None) is None  # a browser session's socket
    assert await receipts.advance_on_loop(receipts.DELIVERED, user=alice, conversation_id=chat.pk, seq=-1,
                                          device_id=device_id) is None
    assert not await db(lambda: Message.objects.exists())()

    sent = await send.send_text_on_loop(sender=alice, conversation_id=chat.pk, client_id="m", text="hi",
                                        device_id=device_id)
    assert sent is not None and sent[1] and sent[0].seq == 1
    assert await receipts.advance_on_loop(receipts.DELIVERED, user=bob, conversation_id=chat.pk, seq=1,
                                          device_id=await db(lambda: bob.devices.get().pk)()) is True
    assert await receipts.advance_on_loop(receipts.DELIVERED, user=bob, conversation_id=chat.pk, seq=1,
                                          device_id=await db(lambda: bob.devices.get().pk)()) is False


async def test_busy_database_threads_do_not_hold_up_a_browser_pages_messages_and_receipts(sockets, settings):
    """A page's socket (its session cookie, no device) takes the loop's path too: its session is
    checked by a statement of its own there."""
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, _), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    headers, _ = await db(browser_login)(alice)
    page, b = await sockets(headers=headers), await sockets(bob_token)
    hello = await b.send_message(chat.pk, "hello page")
    await page.receive_new(hello["seq"])
    pool = frontdesk_db._executor()
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        await page.send(type="read", conversation=chat.pk, seq=hello["seq"])
        read = await b.receive_type("message.status")
        assert (read["status"], read["seq"], read["user"]) == ("read", hello["seq"], alice.pk)
        message = await page.send_message(chat.pk, "past the queue")
        assert (await b.receive_new(message["seq"]))["message"]["text"] == "past the queue"
        assert not any(job.done() for job in busy)  # all of it happened while the threads were taken
    finally:
        release.set()


async def test_typing_reaches_whom_it_did_wherever_the_statements_run(statements_on_loop, sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token), (dave, dave_token) = await people(4)
    group = await db(group_conversation)(alice, bob, carol, dave)
    await db(people_service.block_user)(blocker=dave, user_id=alice.pk)
    headers, _ = await db(browser_login)(alice)
    phone, page = await sockets(alice_token), await sockets(headers=headers)
    b, c, d = await sockets(bob_token), await sockets(carol_token), await sockets(dave_token)

    await phone.send(type="typing", conversation=group.pk)
    await page.send(type="typing", conversation=group.pk)
    for member in (b, c):
        for _ in range(2):
            assert await member.receive_type("typing") == {"type": "typing", "conversation": group.pk, "user": alice.pk}
    barrier = await c.send_message(group.pk, "barrier")
    assert "typing" not in [event["type"] for event in await d.receive_until_new(barrier)]

    (outsider, outsider_token), = await people(1)
    o = await sockets(outsider_token)
    await o.send(type="typing", conversation=group.pk, ref="t1")
    assert ((await o.receive_type("error"))["code"]) == "not_found"
    await db(lambda: alice.devices.all().delete())()
    await phone.send(type="typing", conversation=group.pk)
    assert await phone.receive_type("session.revoked") == {"type": "session.revoked"}


async def test_busy_database_threads_do_not_hold_up_typing(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    headers, _ = await db(browser_login)(alice)
    page = await sockets(headers=headers)
    pool = frontdesk_db._executor()
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        for typist in (a, page):
            await typist.send(type="typing", conversation=chat.pk)
            assert await b.receive_type("typing") == {"type": "typing", "conversation": chat.pk, "user": alice.pk}
        assert not any(job.done() for job in busy)
    finally:
        release.set()


@pytest.mark.parametrize("how", [None, *SESSION_ENDINGS])
async def test_the_loops_session_check_answers_as_djangos(settings, how):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, _), (bob, _) = await people(2)
    _, key = await db(browser_login)(alice)
    logged_in = how is None
    if how is not None:
        await db(end_browser_session)(alice, key, how)

    assert await sessions.session_logs_in_on_loop(key, alice.pk) is logged_in
    assert (await db(sessions.session_user_id)(key) == alice.pk) is logged_in
    # What a page's socket connects as: the same user, loaded as the ORM loads it; a session that
    # logs no one in is left to Django's way.
    on_loop, through_django = await sessions.session_user_on_loop(key), await db(sessions.session_user)(key)
    if logged_in:
        user_fields = [f.attname for f in User._meta.concrete_fields]
        assert [getattr(on_loop, f) for f in user_fields] == [getattr(through_django, f) for f in user_fields]
        assert on_loop.is_authenticated and on_loop.pk == alice.pk
    else:
        assert on_loop is None and through_django is None
    assert await sessions.session_logs_in_on_loop(key, bob.pk) is False  # not Bob's session
    assert await sessions.session_logs_in_on_loop("no-such-session", alice.pk) is False


async def test_the_loops_session_check_leaves_other_setups_to_django(settings):
    (alice, _), = await people(1)
    _, key = await db(browser_login)(alice)
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    assert await sessions.session_logs_in_on_loop(key, alice.pk) is True

    assert (await sessions.session_user_on_loop(key)).pk == alice.pk

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    assert await sessions.session_logs_in_on_loop(key, alice.pk) is None
    assert await sessions.session_user_on_loop(key) is None
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.AUTHENTICATION_BACKENDS = ["tests.frontdesk.test_ws_postgresql_event_loop.AnotherBackend"]
    assert await sessions.session_logs_in_on_loop(key, alice.pk) is None
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": False}
    assert await sessions.session_logs_in_on_loop(key, alice.pk) is None


class AnotherBackend:
    def get_user(self, user_id):
        return None


async def test_the_periodic_check_closes_revoked_sockets_while_the_database_threads_are_busy(sockets, settings):
    """Every socket re-checks its credential once a minute: on the loop, a logged-out device's and
    an ended session's sockets are closed even while every database thread is taken."""
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True, "AUTH_RECHECK_SECONDS": 0.2}
    (alice, alice_token), (bob, _) = await people(2)
    headers, session_key = await db(browser_login)(bob)
    phone, page = await sockets(alice_token), await sockets(headers=headers)
    pool = frontdesk_db._executor()
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        await db(lambda: alice.devices.all().delete())()
        await db(lambda: Session.objects.filter(session_key=session_key).delete())()
        for socket in (phone, page):
            assert await socket.receive_type("session.revoked") == {"type": "session.revoked"}
            assert await socket.receive_close() == 4001
        assert not any(job.done() for job in busy)
    finally:
        release.set()


# --- connecting and disconnecting ----------------------------------------------------------------
async def test_connecting_and_leaving_answer_as_through_the_threads(statements_on_loop, sockets):
    """A token's socket is let in or refused, presence goes out to whom it did, the last seen is
    stored and a missed message is caught up, whether the connect's statements run on the loop or
    in the threads."""
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    chat = await db(direct_conversation)(alice, bob)
    await db(direct_conversation)(alice, carol)
    await db(people_service.block_user)(blocker=carol, user_id=alice.pk)
    b, c = await sockets(bob_token), await sockets(carol_token)
    missed = await b.send_message(chat.pk, "while you were away")

    a = await sockets(alice_token)
    assert (await a.receive_new(missed["seq"]))["message"]["text"] == "while you were away"
    assert await b.receive_type("presence") == {"type": "presence", "user": alice.pk, "online": True, "last_seen": None}
    await a.close()
    offline = await b.receive_type("presence")
    stored = await db(lambda: User.objects.get(pk=alice.pk).last_seen)()
    assert stored is not None and offline["online"] is False and offline["last_seen"] == events.timestamp(stored)
    assert "presence" not in [e["type"] for e in await c.drain()]  # Carol blocked Alice

    refused = await sockets("not-a-token")
    assert (await refused.receive_type("error"))["code"] == "authentication_failed"
    assert await refused.receive_close() == 4001
    await db(lambda: User.objects.filter(pk=bob.pk).update(is_active=False))()
    deactivated = await sockets(bob_token)
    assert (await deactivated.receive_type("error"))["code"] == "authentication_failed"
    assert await deactivated.receive_close() == 4001


async def test_busy_database_threads_do_not_hold_up_connecting_and_leaving(sockets, settings):
    """After a server restarts, every one of its users reconnects at once: a socket's connect (its
    token, its presence, whether it missed anything) and its close no longer queue for the
    database threads."""
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, alice_token), (bob, bob_token) = await people(2)
    await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)
    pool = frontdesk_db._executor()
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        a = await sockets(alice_token)
        assert (await b.receive_type("presence"))["online"] is True
        await a.close()
        assert (await b.receive_type("presence"))["online"] is False
        assert await db(lambda: User.objects.get(pk=alice.pk).last_seen)() is not None
        assert not any(job.done() for job in busy)
    finally:
        release.set()


async def test_the_loops_token_check_answers_as_djangos(settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    (alice, token), = await people(1)
    await db(lambda: alice.devices.update(last_used_at=None))()

    on_loop = await accounts.authenticate_token_on_loop(token)
    through_django = await db(accounts.authenticate_token)(token)
    fields = ["id", "user_id", "name", "token_hash", "created_at"]
    assert [getattr(on_loop, f) for f in fields] == [getattr(through_django, f) for f in fields]
    user_fields = [f.attname for f in User._meta.concrete_fields]
    assert [getattr(on_loop.user, f) for f in user_fields] == [getattr(through_django.user, f) for f in user_fields]
    assert on_loop.user.is_authenticated and on_loop.user.phone_number == alice.phone_number

    # The device's last use is stored, a minute apart at most.
    first_use = await db(lambda: alice.devices.get().last_used_at)()
    assert first_use is not None
    await accounts.authenticate_token_on_loop(token)
    assert await db(lambda: alice.devices.get().last_used_at)() == first_use
    await db(lambda: alice.devices.update(last_used_at=timezone.now() - accounts.LAST_USED_EVERY * 2))()
    await accounts.authenticate_token_on_loop(token)
    assert await db(lambda: alice.devices.get().last_used_at)() > first_use

    assert await accounts.authenticate_token_on_loop("not-a-token") is None  # left to Django, which refuses it
    await db(lambda: User.objects.filter(pk=alice.pk).update(is_active=False))()
    assert await accounts.authenticate_token_on_loop(token) is None
    assert await db(accounts.authenticate_token)(token) is None
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": False}
    await db(lambda: User.objects.filter(pk=alice.pk).update(is_active=True))()
    assert await accounts.authenticate_token_on_loop(token) is None


@pytest.mark.parametrize("pool", [True, {"max_size": 4}], ids=["default-pool", "sized-pool"])
async def test_the_loops_connections_are_kept_beside_a_pool(settings, pool):
    # With Django's pool CONN_MAX_AGE is 0 (every use returns a connection to the pool); the
    # loop's own connections must not take that as "one per statement", which would start a
    # PostgreSQL backend for every send.
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    settings_dict = connection.settings_dict  # one dict, shared by every thread's wrapper
    saved = settings_dict["CONN_MAX_AGE"], settings_dict["OPTIONS"].get("pool")
    settings_dict["CONN_MAX_AGE"], settings_dict["OPTIONS"]["pool"] = 0, pool
    try:
        backends = {(await async_sql.rows("SELECT pg_backend_pid()", []))[0][0] for _ in range(3)}
    finally:
        settings_dict["CONN_MAX_AGE"] = saved[0]
        if saved[1] is None:
            settings_dict["OPTIONS"].pop("pool")
        else:
            settings_dict["OPTIONS"]["pool"] = saved[1]
    assert len(backends) == 1
    assert len({(await async_sql.rows("SELECT pg_backend_pid()", []))[0][0] for _ in range(2)}) == 2  # CONN_MAX_AGE 0


@pytest.fixture
def kept_loop_connections(monkeypatch):
    """The event loop's connections kept between statements, as deployed (the suite otherwise opens
    one per statement). Django's stay one per call: as deployed, none a thread takes is dead (the
    pool checks it first: tests/test_request_connections.py)."""
    monkeypatch.setattr(async_sql, "_max_age", lambda: 3600.0)
    yield
    connection.close()  # dropped with the others; the test database's flush opens a new one
    drop_other_database_connections()  # the loop's, which would keep the test database busy at teardown


async def test_when_the_loops_connections_are_dropped_the_threads_answer_every_frame(kept_loop_connections, sockets,
                                                                                      settings, caplog):
    settings.MESSENGER = {**settings.MESSENGER, "PG_ON_EVENT_LOOP": True}
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    headers, _ = await db(browser_login)(alice)
    page = await sockets(headers=headers)
    await exchange(a, b, chat.pk, ("before",))
    bobs_second_device = await another_device(bob)

    async def restart():
        await a.send(type="typing", conversation=chat.pk)  # leaves one of the loop's connections idle
        assert (await b.receive_type("typing"))["user"] == alice.pk
        assert await db(drop_other_database_connections)() >= 1
        caplog.clear()

    def handed_over() -> bool:
        return any("on the event loop failed; handing it to a database thread" in r.getMessage() for r in caplog.records)

    with caplog.at_level("WARNING"):
        await restart()
        sent = await a.send_message(chat.pk, "after")
        assert (await b.receive_new(sent["seq"]))["message"]["text"] == "after"
        assert handed_over()

        await restart()
        await b.send(type="ack", conversation=chat.pk, seq=sent["seq"])
        assert (await a.receive_type("message.status"))["status"] == "delivered"
        assert handed_over()

        await restart()
        await page.send(type="typing", conversation=chat.pk)
        assert await b.receive_type("typing") == {"type": "typing", "conversation": chat.pk, "user": alice.pk}
        assert handed_over()

        await restart()
        from_page = await page.send_message(chat.pk, "from the page")
        assert (await b.receive_new(from_page["seq"]))["message"]["text"] == "from the page"
        assert handed_over()

        await restart()
        again = await sockets(bobs_second_device)
        await again.send(type="typing", conversation=chat.pk)
        assert await a.receive_type("typing") == {"type": "typing", "conversation": chat.pk, "user": bob.pk}
        assert handed_over()

    assert await db(lambda: list(Message.objects.filter(conversation=chat).order_by("seq")
                                 .values_list("text", flat=True)))() == ["before", "after", "from the page"]
