"""Another user cannot read or change what is not theirs, over REST and the websocket; a revoked
token fails at once, also on a socket that is already open.

Every resource of the client API is covered: profile, contacts, blocks, conversations and their
members, messages, receipts, typing. A conversation one is not in is "not found" (404), never
"forbidden", so ids cannot be probed. The developer API (apps, keys, webhooks) and media are
checked beside their own tests (tests/developer_api/, tests/frontdesk/test_api_media.py), as
docs/security.md lists.
"""

import pytest

from broker.services import accounts, send
from broker.services.people import add_contact
from storage.models import Block, Contact, Conversation, Membership, Message, User
from tests.factories import UserFactory, api_user, direct_conversation, group_conversation, sent_message
from tests.openapi import SchemaCheckedClient
from tests.ws import browser_login, db, end_browser_session, people, sockets  # noqa: F401  (sockets is a fixture)


def snapshot() -> dict:
    """Everything a request could change, to prove that a refused one changed nothing."""
    return {
        "users": list(User.objects.order_by("pk").values("pk", "display_name", "about", "is_active")),
        "contacts": list(Contact.objects.order_by("pk").values()),
        "blocks": list(Block.objects.order_by("pk").values()),
        "conversations": list(Conversation.objects.order_by("pk").values("pk", "title", "last_seq")),
        "memberships": list(Membership.objects.order_by("pk").values("pk", "user", "role", "delivered_seq", "read_seq")),
        "messages": list(Message.objects.order_by("pk").values("pk", "seq", "text")),
    }


@pytest.fixture
def world(db):
    """Alice and Bob share a direct chat and a group (Alice admin); Mallory is in neither."""
    alice, alice_api = api_user(display_name="Alice")
    bob, bob_api = api_user(display_name="Bob")
    carol = UserFactory(display_name="Carol")
    mallory, mallory_api = api_user(display_name="Mallory")
    direct = direct_conversation(alice, bob)
    group = group_conversation(alice, bob, carol, title="Private")
    message = sent_message(alice, direct, "secret")
    sent_message(bob, group, "group secret")
    contact = add_contact(owner=alice, user_id=bob.pk, name="Bobby")
    return {
        "alice": alice, "alice_api": alice_api, "bob": bob, "bob_api": bob_api, "carol": carol,
        "mallory": mallory, "mallory_api": mallory_api, "direct": direct, "group": group,
        "message": message, "contact": contact,
    }


def outsider_requests(w) -> list[tuple[str, str, dict | None, int, str]]:
    """(method, url, body, expected status, expected code) for Mallory against Alice's things."""
    d, g = w["direct"].pk, w["group"].pk
    bob, carol = w["bob"].pk, w["carol"].pk
    return [
        ("get", f"/api/v1/conversations/{d}", None, 404, "not_found"),
        ("get", f"/api/v1/conversations/{g}", None, 404, "not_found"),
        ("get", f"/api/v1/conversations/{d}/messages", None, 404, "not_found"),
        ("get", f"/api/v1/conversations/{g}/messages?after_seq=0", None, 404, "not_found"),
        ("post", f"/api/v1/conversations/{d}/messages", {"client_id": "m1", "text": "let me in"}, 404, "not_found"),
        ("post", f"/api/v1/conversations/{g}/messages", {"client_id": "m2", "text": "let me in"}, 404, "not_found"),
        ("post", f"/api/v1/conversations/{d}/read", {"seq": 1}, 404, "not_found"),
        ("post", f"/api/v1/conversations/{g}/delivered", {"seq": 1}, 404, "not_found"),
        ("post", f"/api/v1/conversations/{g}/members", {"user_ids": [w["mallory"].pk]}, 404, "not_found"),
        ("delete", f"/api/v1/conversations/{g}/members", {"user_id": carol}, 404, "not_found"),
        ("delete", f"/api/v1/conversations/{g}/members/{bob}", None, 404, "not_found"),
        ("delete", f"/api/v1/contacts/{w['contact'].pk}", None, 404, "not_found"),
        ("delete", f"/api/v1/blocks/{bob}", None, 404, "not_found"),  # Alice's blocks are not Mallory's
    ]


def test_an_outsider_can_neither_read_nor_change_others_conversations_messages_or_contacts(world):
    before = snapshot()
    for method, url, body, status, code in outsider_requests(world):
        response = getattr(world["mallory_api"], method)(url, body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, url)
        assert "secret" not in response.content.decode(), (method, url)

    assert snapshot() == before
    listed = world["mallory_api"].get("/api/v1/conversations").json()
    assert listed == []
    assert world["mallory_api"].get("/api/v1/contacts").json() == []


def test_a_member_who_is_not_admin_cannot_change_the_group(world):
    bob_api, g = world["bob_api"], world["group"].pk
    before = snapshot()

    added = bob_api.post(f"/api/v1/conversations/{g}/members", {"user_ids": [world["mallory"].pk]})
    removed = bob_api.delete(f"/api/v1/conversations/{g}/members/{world['carol'].pk}")

    assert (added.status_code, added.json()["error"]["code"]) == (403, "forbidden")
    assert (removed.status_code, removed.json()["error"]["code"]) == (403, "forbidden")
    assert snapshot() == before


def test_ids_counted_up_put_nobody_into_a_group_nor_show_anyone_s_number(world):
    """Mallory, knowing nobody, names the others by id in a new group and in one of her own; Alice,
    an admin, names Mallory, a stranger to her. Each is 404 on the field, as an id nobody has, and
    nothing changes."""
    mallory_api, alice_api = world["mallory_api"], world["alice_api"]
    others = [world[name] for name in ("alice", "bob", "carol")]
    own = mallory_api.post("/api/v1/conversations", {"kind": "group", "title": "Mine", "member_ids": []}).json()["id"]
    before = snapshot()

    answers = [(mallory_api.post("/api/v1/conversations", {"kind": "group", "title": "Trap", "member_ids": [u.pk]}),
                "member_ids", u) for u in others]
    answers += [(mallory_api.post(f"/api/v1/conversations/{own}/members", {"user_ids": [u.pk]}), "user_ids", u)
                for u in others]
    answers += [
        (alice_api.post("/api/v1/conversations", {"kind": "group", "title": "Trap", "member_ids": [world["mallory"].pk]}),
         "member_ids", world["mallory"]),
        (alice_api.post(f"/api/v1/conversations/{world['group'].pk}/members", {"user_ids": [world["mallory"].pk]}),
         "user_ids", world["mallory"]),
    ]

    for response, field, person in answers:
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["field"]) == (404, "not_found", field)
        assert person.phone_number not in response.content.decode() and person.display_name not in response.content.decode()
    assert snapshot() == before


def test_profiles_are_changed_only_by_their_owner(world):
    # There is no URL naming another user's profile: PATCH me changes the caller only.
    response = world["mallory_api"].patch("/api/v1/me", {"display_name": "Alice"})
    assert response.status_code == 200 and response.json()["id"] == world["mallory"].pk
    world["alice"].refresh_from_db()
    assert world["alice"].display_name == "Alice"
    assert world["alice_api"].get("/api/v1/me").json()["id"] == world["alice"].pk


def test_a_removed_member_loses_access_at_once(world):
    alice_api, bob_api, g = world["alice_api"], world["bob_api"], world["group"].pk
    assert alice_api.delete(f"/api/v1/conversations/{g}/members/{world['bob'].pk}").status_code == 204
    after = alice_api.post(f"/api/v1/conversations/{g}/messages", {"client_id": "after-bob", "text": "now"}).json()

    # What came up to the notice of his removal stays his to read; nothing after it.
    seen = bob_api.get(f"/api/v1/conversations/{g}/messages").json()["results"]
    assert seen[-1]["event"]["action"] == "member_removed" and after["seq"] not in [m["seq"] for m in seen]
    assert bob_api.get(f"/api/v1/conversations/{g}/messages", {"after_seq": seen[-1]["seq"]}).json()["results"] == []
    sent = bob_api.post(f"/api/v1/conversations/{g}/messages", {"client_id": "after-removal", "text": "hi"})
    assert sent.status_code == 403
    assert not Message.objects.filter(client_id="after-removal").exists()


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer ", "Token abc", "Bearer a b"])
def test_every_authenticated_endpoint_refuses_a_missing_or_wrong_token(world, header):
    client = SchemaCheckedClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    d = world["direct"].pk
    for method, url in [("get", "/api/v1/me"), ("get", "/api/v1/contacts"), ("get", "/api/v1/conversations"),
                        ("get", f"/api/v1/conversations/{d}"), ("get", f"/api/v1/conversations/{d}/messages"),
                        ("post", f"/api/v1/conversations/{d}/messages"), ("post", "/api/v1/auth/logout")]:
        response = getattr(client, method)(url, {"client_id": "x", "text": "x"} if method == "post" else None)
        assert response.status_code == 401, (header, method, url)
        assert response.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}


def test_a_logged_out_token_fails_at_once_and_other_devices_keep_working(world):
    alice = world["alice"]
    _, second_token = accounts.login(phone_number=alice.phone_number, password="correct horse battery")
    second = SchemaCheckedClient(second_token)

    assert world["alice_api"].post("/api/v1/auth/logout").status_code == 204

    refused = world["alice_api"].get("/api/v1/me")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "authentication_failed")
    assert second.get("/api/v1/me").status_code == 200


def test_a_deactivated_user_is_refused_everywhere(world):
    User.objects.filter(pk=world["alice"].pk).update(is_active=False)

    assert world["alice_api"].get("/api/v1/me").status_code == 401
    login = SchemaCheckedClient().post("/api/v1/auth/login", {"phone_number": world["alice"].phone_number,
                                                              "password": "correct horse battery"})
    assert login.status_code == 401


# --- the websocket ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_an_outsider_can_do_nothing_in_others_conversations_over_the_websocket(sockets):
    (alice, alice_token), (bob, bob_token), (mallory, mallory_token) = await people(3)
    direct = await db(direct_conversation)(alice, bob)
    group = await db(group_conversation)(alice, bob)
    await db(sent_message)(alice, direct, "secret")
    a, b = await sockets(alice_token), await sockets(bob_token)
    m = await sockets(mallory_token)
    await a.drain()
    await b.drain()
    before = await db(snapshot)()

    for conversation in (direct.pk, group.pk):
        for frame in [
            {"type": "message.send", "client_id": f"m-{conversation}", "conversation": conversation, "text": "hi"},
            {"type": "ack", "conversation": conversation, "seq": 1, "ref": "ack"},
            {"type": "read", "conversation": conversation, "seq": 1, "ref": "read"},
            {"type": "typing", "conversation": conversation, "ref": "typing"},
        ]:
            await m.send(**frame)
            error = await m.receive_type("error")
            assert (error["code"], error["frame"]) == ("not_found", frame["type"]), frame

    assert await db(snapshot)() == before
    # Nothing reached the members, and Mallory heard nothing of theirs.
    assert [e for e in await a.drain() if e["type"] != "presence"] == []
    assert [e for e in await b.drain() if e["type"] != "presence"] == []
    await a.send_message(direct.pk, "only for bob")
    assert [e for e in await m.drain() if e["type"] == "message.new"] == []


@pytest.mark.django_db(transaction=True)
async def test_a_revoked_token_closes_its_open_socket_even_when_the_event_is_lost(sockets):
    """The `session.revoked` event may be lost by the channel layer: the next frame finds out."""
    (alice, alice_token), (bob, _) = await people(2)
    direct = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)

    # Revoke behind the channel layer's back: the row goes, no event is published.
    await db(lambda: accounts.selectors.device_by_token_hash(token_hash=accounts.hash_token(alice_token)).delete())()
    await a.send(type="message.send", client_id="after-logout", conversation=direct.pk, text="sneaky")

    assert await a.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await a.receive_close() == 4001
    assert not await db(Message.objects.filter(client_id="after-logout").exists)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("revoke", ["logout", "deactivation"])
@pytest.mark.parametrize("frame", [
    {"type": "message.send", "client_id": "after", "text": "sneaky"},
    {"type": "message.send", "client_id": "again", "text": "sneaky"},  # a retry of a stored message
    {"type": "ack", "seq": 2},
    {"type": "read", "seq": 2},
    {"type": "message.send", "client_id": "after", "text": "sneaky", "conversation": "elsewhere"},  # not a member
    {"type": "ack", "seq": "one"},  # bad input
])
async def test_every_frame_of_a_revoked_credential_closes_the_socket_and_changes_nothing(sockets, frame, revoke):
    """Sends and receipts check the device within their own query; whatever path a frame takes
    through them, a revoked credential is refused before anything is written."""
    (alice, alice_token), (bob, _) = await people(2)
    (carol, _), = await people(1)
    direct = await db(direct_conversation)(alice, bob)
    elsewhere = await db(direct_conversation)(bob, carol)
    a = await sockets(alice_token)
    await a.send_message(direct.pk, "before", client_id="again")
    await db(lambda: send.send_message(sender=bob, conversation_id=direct.pk, client_id="reply", text="hi"))()
    await a.drain()  # Alice has not acknowledged Bob's message (seq 2)

    if revoke == "logout":  # behind the channel layer's back: no event is published
        await db(lambda: accounts.selectors.device_by_token_hash(token_hash=accounts.hash_token(alice_token)).delete())()
    else:
        await db(lambda: User.objects.filter(pk=alice.pk).update(is_active=False))()
    before = await db(snapshot)()
    conversation = elsewhere.pk if frame.get("conversation") == "elsewhere" else direct.pk
    await a.send(**{**frame, "conversation": conversation})

    assert await a.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await a.receive_close() == 4001
    assert await db(snapshot)() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["logout", "expiry", "password change elsewhere", "deactivation"])
@pytest.mark.parametrize("frame", [
    {"type": "message.send", "client_id": "after", "text": "sneaky"},
    {"type": "ack", "seq": 2},
    {"type": "read", "seq": 2},
    {"type": "typing"},
])
async def test_every_frame_of_an_ended_browser_session_closes_its_socket_and_changes_nothing(sockets, frame, how):
    """A page's socket is authenticated by its session cookie: the frame after the session ended
    is refused before anything is written, whichever way the frame is handled."""
    (alice, _), (bob, _) = await people(2)
    direct = await db(direct_conversation)(alice, bob)
    headers, session_key = await db(browser_login)(alice)
    page = await sockets(headers=headers)
    await page.send_message(direct.pk, "before")
    await db(lambda: send.send_message(sender=bob, conversation_id=direct.pk, client_id="reply", text="hi"))()
    await page.drain()  # Alice has not acknowledged Bob's message (seq 2)

    await db(end_browser_session)(alice, session_key, how)
    before = await db(snapshot)()
    await page.send(**frame, conversation=direct.pk)

    assert await page.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await page.receive_close() == 4001
    assert await db(snapshot)() == before


@pytest.mark.django_db(transaction=True)
async def test_an_idle_socket_of_a_revoked_token_is_closed_by_the_periodic_check(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "AUTH_RECHECK_SECONDS": 0.2}
    (alice, alice_token), (bob, _) = await people(2)
    a = await sockets(alice_token)

    await db(lambda: accounts.selectors.device_by_token_hash(token_hash=accounts.hash_token(alice_token)).delete())()

    assert await a.receive_type("session.revoked", timeout=3) == {"type": "session.revoked"}
    assert await a.receive_close() == 4001


def test_sockets_that_connect_together_recheck_at_moments_of_their_own():
    """Every client of a restarted server reconnects within seconds: their periodic checks must
    not then come as one burst of queries every interval, yet each socket checks once per interval."""
    from frontdesk.consumers import recheck_waits

    first_waits = [next(recheck_waits(60)) for _ in range(200)]
    assert all(0 <= wait < 60 for wait in first_waits)
    assert max(first_waits) - min(first_waits) > 30  # spread over the interval, not bunched

    waits = recheck_waits(60)
    next(waits)
    assert [next(waits) for _ in range(3)] == [60, 60, 60]


@pytest.mark.django_db(transaction=True)
async def test_a_deactivated_users_socket_is_closed(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "AUTH_RECHECK_SECONDS": 0.2}
    (alice, alice_token), _ = await people(2)
    a = await sockets(alice_token)

    await db(lambda: User.objects.filter(pk=alice.pk).update(is_active=False))()

    assert await a.receive_type("session.revoked", timeout=3) == {"type": "session.revoked"}
    assert await a.receive_close() == 4001



# --- the developer API: apps, keys, webhooks, their messages --------------------------------------
@pytest.fixture
def apps_world(db):
    from developer_api.services import messaging
    from tests.developer_api.helpers import app_client, make_app, opted_in_user

    owner, owner_api = api_user(display_name="Owner")
    mallory, mallory_api = api_user(display_name="Mallory")
    app, app_api = app_client(make_app(owner=owner))
    other_app, other_api = app_client(make_app(owner=mallory))
    customer = opted_in_user(app)
    key = app.keys.first()
    record, _ = messaging.send_message(api_key=key, to=customer.phone_number, message_type="text", text={"body": "for you"})
    return {"owner_api": owner_api, "mallory_api": mallory_api, "app": app, "app_api": app_api,
            "other_api": other_api, "key": key, "message_id": record.public_id}


def developer_snapshot() -> dict:
    from developer_api.models import ApiKey, CommercialRequest, DeveloperApp, OutboundMessage

    return {
        "apps": list(DeveloperApp.objects.order_by("pk").values()),
        "keys": list(ApiKey.objects.order_by("pk").values("pk", "name", "scopes", "revoked_at")),
        "commercial": list(CommercialRequest.objects.order_by("pk").values("pk")),
        "outbound": list(OutboundMessage.objects.order_by("pk").values("pk")),
    }


def test_another_user_can_neither_read_nor_change_an_app_its_keys_or_webhook(apps_world):
    a = apps_world["app"].pk
    key = apps_world["key"].pk
    before = developer_snapshot()
    for method, url, body in [
        ("get", f"/api/v1/developer/apps/{a}", None),
        ("patch", f"/api/v1/developer/apps/{a}", {"name": "Mine now"}),
        ("get", f"/api/v1/developer/apps/{a}/keys", None),
        ("post", f"/api/v1/developer/apps/{a}/keys", {"scopes": ["messages:send"]}),
        ("delete", f"/api/v1/developer/apps/{a}/keys/{key}", None),
        ("get", f"/api/v1/developer/apps/{a}/webhook", None),
        ("put", f"/api/v1/developer/apps/{a}/webhook", {"url": "https://evil.example/hook", "verify_token": "x"}),
        ("delete", f"/api/v1/developer/apps/{a}/webhook", None),
        ("get", f"/api/v1/developer/apps/{a}/usage", None),
        ("get", f"/api/v1/developer/apps/{a}/commercial", None),
        ("post", f"/api/v1/developer/apps/{a}/commercial", {"use_description": "selling things"}),
    ]:
        response = getattr(apps_world["mallory_api"], method)(url, body)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), (method, url)

    assert developer_snapshot() == before
    listed = apps_world["mallory_api"].get("/api/v1/developer/apps").json()
    assert apps_world["app"].pk not in [app["id"] for app in listed]


def test_another_apps_key_cannot_see_this_apps_messages(apps_world):
    mine = apps_world["app_api"].get(f"/developer/v1/messages/{apps_world['message_id']}")
    theirs = apps_world["other_api"].get(f"/developer/v1/messages/{apps_world['message_id']}")

    assert mine.status_code == 200
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "not_found")
    # An app's own endpoints only ever show that app.
    assert apps_world["other_api"].get("/developer/v1/app").json()["id"] != apps_world["app"].pk


def test_a_revoked_key_fails_at_once(apps_world):
    assert apps_world["app_api"].get("/developer/v1/app").status_code == 200
    a, key = apps_world["app"].pk, apps_world["key"].pk

    assert apps_world["owner_api"].delete(f"/api/v1/developer/apps/{a}/keys/{key}").status_code == 204

    refused = apps_world["app_api"].get("/developer/v1/app")
    assert refused.status_code == 401
    assert apps_world["app_api"].get(f"/developer/v1/messages/{apps_world['message_id']}").status_code == 401


def test_a_device_token_is_not_an_api_key_and_an_api_key_is_not_a_device_token(apps_world):
    device_token = apps_world["owner_api"]._credentials["HTTP_AUTHORIZATION"]
    as_app = SchemaCheckedClient()
    as_app.credentials(HTTP_AUTHORIZATION=device_token)
    assert as_app.get("/developer/v1/app").status_code == 401
    as_user = SchemaCheckedClient()
    as_user.credentials(HTTP_AUTHORIZATION=apps_world["app_api"]._credentials["HTTP_AUTHORIZATION"])
    assert as_user.get("/api/v1/me").status_code == 401
