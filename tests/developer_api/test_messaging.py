"""Apps sending messages: POST /developer/v1/messages and GET /developer/v1/messages/{id}, scopes,
the opt-in rule, statuses, and revocation also for a request already under way."""

import pytest

from broker.services import people, receipts
from developer_api.errors import KeyNotValid
from developer_api.models import ApiKey, OptIn, OutboundMessage
from developer_api.services import apps, keys, messaging
from storage.models import Conversation, Message
from tests.developer_api.helpers import (
    app_client,
    make_app,
    make_key,
    opted_in_user,
    text,
)
from tests.factories import UserFactory, api_user

pytestmark = pytest.mark.django_db

MESSAGES = "/developer/v1/messages"


def test_an_app_messages_a_user_who_opted_in():
    app, client = app_client()
    user = opted_in_user(app)

    response = client.post(MESSAGES, text(user.phone_number, "Your driver is here"))

    assert response.status_code == 201
    [sent] = response.json()["messages"]
    assert sent["id"].startswith("msg_") and sent["status"] == "sent"
    message = Message.objects.get(outbound__public_id=sent["id"])
    assert message.sender_id == app.bot_id and message.text == "Your driver is here"
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.kind == "direct"
    assert {m.user_id for m in conversation.memberships.all()} == {app.bot_id, user.pk}


def test_the_user_sees_the_message_from_the_business_account():
    app, client = app_client()
    user, user_client = api_user()
    apps.opt_in(app=app, user=user)
    client.post(MESSAGES, text(user.phone_number, "Order shipped"))

    [conversation] = user_client.get("/api/v1/conversations").json()

    assert conversation["last_message"]["text"] == "Order shipped"
    bot = next(m["user"] for m in conversation["members"] if m["user"]["id"] == app.bot_id)
    assert bot["is_business"] is True and bot["display_name"] == app.name


def test_an_app_cannot_message_someone_who_has_not_opted_in():
    app, client = app_client()
    stranger = UserFactory()

    response = client.post(MESSAGES, text(stranger.phone_number))
    unknown = client.post(MESSAGES, text("+12125550199"))

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "not_opted_in", "field": "to",
        "message": f"{stranger.phone_number} has not opted in to messages from this app.",
    }
    # Nobody with that number answers exactly alike: apps cannot probe who uses messenger.
    assert unknown.status_code == 403 and unknown.json()["error"]["code"] == "not_opted_in"
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_opting_out_stops_the_messages():
    app, client = app_client()
    user = opted_in_user(app)
    apps.opt_out(app=app, user=user)

    assert client.post(MESSAGES, text(user.phone_number)).json()["error"]["code"] == "not_opted_in"


def test_a_type_that_does_not_exist_is_unsupported():
    app, client = app_client()
    user = opted_in_user(app)

    response = client.post(MESSAGES, {"to": user.phone_number, "type": "sticker", "sticker": {"id": 1}})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_type" and response.json()["error"]["field"] == "type"


@pytest.mark.parametrize("body, field", [
    ({"type": "text", "text": {"body": "hi"}}, "to"),
    ({"to": "12", "type": "text", "text": {"body": "hi"}}, "to"),
    ({"to": "+12125550123", "type": "text"}, "text.body"),
    ({"to": "+12125550123", "type": "text", "text": {"body": "   "}}, "text.body"),
])
def test_malformed_sends_name_the_field(body, field):
    _, client = app_client()

    response = client.post(MESSAGES, body)

    assert response.status_code == 400 and response.json()["error"]["field"] == field


def test_a_repeated_client_id_returns_the_first_message():
    app, client = app_client()
    user = opted_in_user(app)

    first = client.post(MESSAGES, text(user.phone_number, client_id="order-17"))
    again = client.post(MESSAGES, text(user.phone_number, client_id="order-17"))

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["messages"][0]["id"] == first.json()["messages"][0]["id"]
    assert Message.objects.count() == 1 and OutboundMessage.objects.count() == 1


@pytest.mark.parametrize("client_id, got", [(17, "a number"), (1.5, "a number"), (False, "a boolean")])
def test_a_client_id_that_is_not_a_string_is_refused_naming_it(client_id, got):
    # Taken as its digits, 17 would be "17": a retry sent as one and then the other would answer
    # with the same message, or two apps' code paths would disagree on what was sent.
    app, client = app_client()
    user = opted_in_user(app)

    response = client.post(MESSAGES, text(user.phone_number, client_id=client_id))

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"], error["message"]) == (
        "invalid", "client_id", f"client_id must be a string, not {got}.")
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def test_a_message_goes_from_sent_to_delivered_to_read():
    app, client = app_client()
    user = opted_in_user(app)
    sent_id = client.post(MESSAGES, text(user.phone_number)).json()["messages"][0]["id"]
    message = Message.objects.get(outbound__public_id=sent_id)

    statuses = [client.get(f"{MESSAGES}/{sent_id}").json()["status"]]
    receipts.mark_delivered(user=user, conversation_id=message.conversation_id, seq=message.seq)
    statuses.append(client.get(f"{MESSAGES}/{sent_id}").json()["status"])
    receipts.mark_read(user=user, conversation_id=message.conversation_id, seq=message.seq)
    statuses.append(client.get(f"{MESSAGES}/{sent_id}").json()["status"])

    assert statuses == ["sent", "delivered", "read"]
    assert client.get(f"{MESSAGES}/{sent_id}").json() == {
        "id": sent_id, "to": user.phone_number, "type": "text", "status": "read",
        "created_at": client.get(f"{MESSAGES}/{sent_id}").json()["created_at"],
    }


def test_a_user_who_blocked_the_app_makes_its_message_fail():
    app, client = app_client()
    user = opted_in_user(app)
    people.block_user(blocker=user, user_id=app.bot_id)

    response = client.post(MESSAGES, text(user.phone_number))

    assert response.status_code == 201
    [failed] = response.json()["messages"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "recipient_unavailable"
    assert client.get(f"{MESSAGES}/{failed['id']}").json()["status"] == "failed"
    assert not Message.objects.exists()
    assert OutboundMessage.objects.get(public_id=failed["id"]).billable is False


def test_an_app_sees_only_its_own_messages():
    app, client = app_client()
    user = opted_in_user(app)
    sent_id = client.post(MESSAGES, text(user.phone_number)).json()["messages"][0]["id"]
    _, other = app_client()

    assert other.get(f"{MESSAGES}/{sent_id}").status_code == 404
    assert client.get(f"{MESSAGES}/msg_nothing").status_code == 404
    assert client.get(f"{MESSAGES}/42").status_code == 404


# --- scopes ------------------------------------------------------------------------------------
def test_sending_needs_the_send_scope():
    app, reader = app_client(scopes=["messages:read"])
    user = opted_in_user(app)

    response = reader.post(MESSAGES, text(user.phone_number))

    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert "messages:send" in response.json()["error"]["message"]


def test_reading_a_status_needs_the_read_scope():
    app, sender = app_client(scopes=["messages:send"])
    user = opted_in_user(app)
    sent_id = sender.post(MESSAGES, text(user.phone_number)).json()["messages"][0]["id"]

    response = sender.get(f"{MESSAGES}/{sent_id}")

    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


def test_the_webhook_calls_need_the_webhooks_scope():
    _, client = app_client(scopes=["messages:send", "messages:read", "media:write"])

    for response in (client.get("/developer/v1/webhook"), client.delete("/developer/v1/webhook"),
                     client.put("/developer/v1/webhook", {"url": "https://example.com/hook", "verify_token": "x"})):
        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


def test_app_info_and_usage_need_no_scope():
    _, client = app_client(scopes=["media:write"])

    assert client.get("/developer/v1/app").status_code == 200
    assert client.get("/developer/v1/usage").status_code == 200


# --- revocation and suspension -------------------------------------------------------------------
def test_a_send_that_authenticated_before_the_revocation_is_refused_after_it():
    app = make_app()
    key, _ = make_key(app)
    user = opted_in_user(app)
    authenticated = ApiKey.objects.select_related("app", "app__bot", "app__owner").get(pk=key.pk)

    keys.revoke_key(key=key)  # between the request's authentication and its send

    with pytest.raises(KeyNotValid):
        messaging.send_message(api_key=authenticated, to=user.phone_number, message_type="text", text={"body": "hi"})
    assert not Message.objects.exists()


def test_a_revocation_racing_a_request_through_the_view_stops_its_send(monkeypatch):
    from developer_api import authentication

    app, client = app_client()
    user = opted_in_user(app)
    original = authentication.keys.authenticate_key

    def authenticate_then_revoke(raw):
        key = original(raw)
        keys.revoke_key(key=ApiKey.objects.get(pk=key.pk))  # the owner revokes it just now
        return key

    monkeypatch.setattr(authentication.keys, "authenticate_key", authenticate_then_revoke)

    response = client.post(MESSAGES, text(user.phone_number))

    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def test_a_suspended_app_cannot_use_its_keys(admin_user):
    app, client = app_client()
    user = opted_in_user(app)
    apps.suspend_app(app=app, actor=admin_user, reason="testing")

    response = client.post(MESSAGES, text(user.phone_number))

    assert response.status_code == 403 and response.json()["error"]["code"] == "app_suspended"
    assert client.get("/developer/v1/app").json()["error"]["code"] == "app_suspended"

    apps.reinstate_app(app=app, actor=admin_user)
    assert client.post(MESSAGES, text(user.phone_number)).status_code == 201


def test_a_suspended_owner_suspends_the_app(admin_user):
    from developer_api.services import spam

    app, client = app_client()
    spam.suspend_user(user=app.owner, actor=admin_user)

    assert client.get("/developer/v1/app").json()["error"]["code"] == "app_suspended"


def test_messaging_the_bot_opts_the_user_in(django_capture_on_commit_callbacks):
    from tests.factories import direct_conversation, sent_message

    app, client = app_client()
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        sent_message(user, direct_conversation(user, app.bot), "Where is my order?")

    assert OptIn.objects.get(app=app, user=user).source == "messaged"
    assert client.post(MESSAGES, text(user.phone_number, "On its way")).status_code == 201


def test_users_accept_an_app_through_the_client_api():
    app = make_app()
    user, user_client = api_user()

    before = user_client.get(f"/api/v1/apps/{app.pk}").json()
    accepted = user_client.post(f"/api/v1/apps/{app.pk}/opt-in")
    withdrawn = user_client.delete(f"/api/v1/apps/{app.pk}/opt-in")

    assert before["opted_in"] is False and before["bot"]["is_business"] is True
    assert accepted.status_code == 200 and accepted.json()["opted_in"] is True
    assert withdrawn.status_code == 204
    assert user_client.delete(f"/api/v1/apps/{app.pk}/opt-in").status_code == 404
    assert user_client.get("/api/v1/apps/999999").status_code == 404
