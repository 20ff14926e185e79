"""Who may open /ws/v1/: a device token, or the browser session from one of our own pages."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from broker import events
from broker.publish import apublish, user_group
from broker.services import accounts, presence
from frontdesk import db as frontdesk_db
from storage import selectors
from tests.factories import PASSWORD, direct_conversation
from tests.ws import SESSION_ENDINGS, another_device, browser_login, db, end_browser_session, logged_in_browser, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD_URL = "/api/v1/me/password"
NEW_PASSWORD = "a brand new passphrase"


def logout_device(token: str) -> None:
    accounts.logout(device=selectors.device_by_token_hash(token_hash=accounts.hash_token(token)))


async def assert_refused(client) -> None:
    error = await client.receive()
    assert (error["type"], error["code"]) == ("error", "authentication_failed")
    assert error["message"]
    assert await client.receive_close() == 4001


@pytest.mark.parametrize("path", ["/ws/v1/", "/ws/v1/?token=", "/ws/v1/?token=not-a-real-token"])
async def test_a_socket_without_a_valid_token_is_refused(sockets, path):
    client = await sockets(path=path)

    await assert_refused(client)


@pytest.mark.parametrize("origin", [None, b"https://evil.example", b"null"])
async def test_a_session_cookie_without_one_of_our_origins_is_refused(sockets, origin):
    ((alice, _),) = await people(1)
    headers = [header for header in (await db(browser_login)(alice))[0] if header[0] == b"cookie"]
    if origin:
        headers.append((b"origin", origin))

    client = await sockets(headers=headers)

    await assert_refused(client)


async def test_a_browser_page_of_ours_connects_with_its_session(sockets):
    (alice, _), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)
    headers, _ = await db(browser_login)(alice)

    page = await sockets(headers=headers)
    message = await page.send_message(conversation.pk, "from the browser")

    assert message["sender"] == alice.pk
    assert (await b.receive_type("message.new"))["message"] == message


@pytest.mark.parametrize("how", SESSION_ENDINGS)
async def test_a_page_whose_session_no_longer_logs_in_is_refused(sockets, how):
    ((alice, _),) = await people(1)
    headers, key = await db(browser_login)(alice)
    await db(end_browser_session)(alice, key, how)

    await assert_refused(await sockets(headers=headers))


async def test_a_page_logged_in_by_a_backend_no_longer_in_use_is_refused(sockets, settings):
    """As Django's `get_user` refuses it, and every frame of an open page's socket after it."""
    ((alice, _),) = await people(1)
    headers, _ = await db(browser_login)(alice)
    settings.AUTHENTICATION_BACKENDS = ["tests.frontdesk.test_ws_auth.NoOneBackend"]

    await assert_refused(await sockets(headers=headers))


class NoOneBackend:
    def get_user(self, user_id):
        return None


async def test_a_browser_page_connects_while_the_database_threads_are_busy(sockets, settings):
    """A page's session is looked up on the event loop (or, where it cannot be, in our database
    threads): not in Channels' one shared thread, where it waited behind every other call made
    there. Nor do its presence and catch-up wait for a thread."""
    (alice, _), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    headers, _ = await db(browser_login)(alice)
    b = await sockets(bob_token)
    release = threading.Event()
    busy = [asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)(10))]
    pool = frontdesk_db._executor()
    if pool is not None:
        busy += [asyncio.wrap_future(pool.submit(release.wait, 10)) for _ in range(settings.MESSENGER["DB_THREADS"])]
    try:
        page = await sockets(headers=headers)
        assert (await b.receive_type("presence"))["online"] is True
        message = await page.send_message(chat.pk, "from a page opened while the threads were busy")
        assert (await b.receive_new(message["seq"]))["message"]["sender"] == alice.pk
        assert not any(job.done() for job in busy)
    finally:
        release.set()
        await asyncio.gather(*busy)


async def test_logging_out_a_device_closes_its_socket_but_not_the_other_devices(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    phone, laptop = await sockets(alice_token), await sockets(await another_device(alice))
    b = await sockets(bob_token)

    await db(logout_device)(alice_token)

    assert await phone.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await phone.receive_close() == 4001
    message = await laptop.send_message(conversation.pk, "still logged in here")
    assert (await b.receive_type("message.new"))["message"] == message
    await assert_refused(await sockets(alice_token))


async def test_a_new_password_closes_the_other_devices_sockets_at_once_and_keeps_this_ones(sockets):
    from storage.models import Device

    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    lost_phone, laptop = await sockets(alice_token), await sockets(await another_device(alice))
    b = await sockets(bob_token)
    laptop_device = await db(lambda: Device.objects.filter(user=alice).latest("pk").pk)()

    await db(accounts.change_password)(user=alice, current_password=PASSWORD, new_password="a brand new passphrase",
                                       keep_device_id=laptop_device)

    assert await lost_phone.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await lost_phone.receive_close() == 4001
    message = await laptop.send_message(conversation.pk, "changed it, all good")
    assert (await b.receive_type("message.new"))["message"] == message


async def test_a_new_password_set_in_a_browser_closes_the_other_browsers_pages_at_once(sockets):
    """Someone else is in the account in another browser: the person sets a new password in theirs,
    and the other browser's page stops receiving messages at once (not at its next frame or within
    the minute of the periodic check). The page that set it stays connected (it then renews its
    socket with the session's new key), as does nothing else of the user's but this page."""
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    mine, my_headers, _ = await db(logged_in_browser)(alice)
    _, their_headers, _ = await db(logged_in_browser)(alice)
    my_page, their_page, phone = await sockets(headers=my_headers), await sockets(headers=their_headers), \
        await sockets(alice_token)
    b = await sockets(bob_token)

    response = await db(lambda: mine.post(PASSWORD_URL, {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                                          content_type="application/json"))()

    assert (response.status_code, response.json()) == (200, {"devices_logged_out": 1})
    for socket in (their_page, phone):
        assert await socket.receive_type("session.revoked") == {"type": "session.revoked"}
        assert await socket.receive_close() == 4001
    message = await b.send_message(chat.pk, "only the page that changed the password sees this")
    assert "session.revoked" not in [event["type"] for event in await my_page.receive_until_new(message)]
    assert my_page.is_open


async def test_a_new_password_set_from_a_device_closes_every_browser_page_at_once_and_keeps_the_device(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    page = await sockets(headers=(await db(browser_login)(alice))[0])
    phone, b = await sockets(alice_token), await sockets(bob_token)

    response = await db(lambda: Client(HTTP_AUTHORIZATION=f"Bearer {alice_token}").post(
        PASSWORD_URL, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, content_type="application/json"))()

    assert response.status_code == 200
    assert await page.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await page.receive_close() == 4001
    message = await phone.send_message(chat.pk, "changed it from my phone")
    assert (await b.receive_new(message["seq"]))["message"] == message


async def test_a_revocation_closes_a_socket_whose_frame_is_still_being_handled(sockets, settings, monkeypatch):
    """The revocation does not wait behind a slow frame, and the frame's late answer is not
    written to the closed socket (nor does it fail the connection's handling)."""
    settings.MESSENGER = {**settings.MESSENGER, "SQLITE_ON_EVENT_LOOP": False}  # the call holds a thread, not the loop
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    phone = await sockets(alice_token)
    started, release = threading.Event(), threading.Event()
    typing_audience = presence.typing_audience

    def slow_typing_audience(**kwargs):
        started.set()
        release.wait(5)
        return typing_audience(**kwargs)

    monkeypatch.setattr(presence, "typing_audience", slow_typing_audience)
    await phone.send(type="typing", conversation=conversation.pk)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)

    await apublish([user_group(alice.pk)], events.session_revoked())

    try:
        assert await phone.receive_type("session.revoked") == {"type": "session.revoked"}
        assert await phone.receive_close() == 4001
    finally:
        release.set()
    assert await phone.nothing_more(0.3)
