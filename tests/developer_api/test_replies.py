"""Replies in an app's chats: an app sends a message quoting one of its chat with the user (its own,
by its msg_ id, or the user's, by its in_ id) with `context: {"message_id"}`, which the user sees as
a quote; a user's reply reaches the app's webhook with the `context` of the message it quotes."""

import pytest

from broker.services.send import send_message as user_sends
from developer_api.models import OutboundMessage
from developer_api.services import apps, usage, webhooks
from storage.models import Message
from tests.developer_api.helpers import app_client, opted_in_user, text
from tests.factories import UserFactory, api_user, direct_conversation, sent_message

pytestmark = pytest.mark.django_db

MESSAGES = "/developer/v1/messages"


def user_history(user_client, conversation_id: int) -> list[dict]:
    response = user_client.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_an_app_answers_a_users_question_quoting_it_and_its_own_message_too():
    app, client = app_client()
    user, user_client = api_user()
    apps.opt_in(app=app, user=user)
    chat = direct_conversation(user, app.bot)
    question = sent_message(user, chat, "Where is my order?")

    answer = client.post(MESSAGES, text(user.phone_number, "On its way", context={"message_id": f"in_{question.pk}"}))
    [sent] = answer.json()["messages"]
    follow_up = client.post(MESSAGES, text(user.phone_number, "Arriving at 5", context={"message_id": sent["id"]}))

    assert (answer.status_code, follow_up.status_code) == (201, 201)
    shown = user_history(user_client, chat.pk)
    assert [(m["text"], m["reply_to"]) for m in shown] == [
        ("Where is my order?", None), ("On its way", question.seq), ("Arriving at 5", question.seq + 1)]
    # The app reads its messages back with what they quote, by the ids it knows them by.
    assert client.get(f"{MESSAGES}/{sent['id']}").json()["context"] == {"id": f"in_{question.pk}"}
    later = follow_up.json()["messages"][0]["id"]
    assert client.get(f"{MESSAGES}/{later}").json()["context"] == {"id": sent["id"]}


def test_a_message_quoting_nothing_reads_without_a_context():
    app, client = app_client()
    user = opted_in_user(app)
    [sent] = client.post(MESSAGES, text(user.phone_number, "Hello")).json()["messages"]

    assert "context" not in client.get(f"{MESSAGES}/{sent['id']}").json()


def test_a_users_reply_reaches_the_webhook_with_the_id_of_what_it_quotes(receiver, django_capture_on_commit_callbacks):
    app, client = app_client()
    webhooks.set_webhook(app=app, url=receiver.url, verify_token=receiver.verify_token)
    user = opted_in_user(app)
    [offer] = client.post(MESSAGES, text(user.phone_number, "Table for 2 at 8?")).json()["messages"]
    chat = Message.objects.get(outbound__public_id=offer["id"])

    with django_capture_on_commit_callbacks(execute=True):
        yes, _ = user_sends(sender=user, conversation_id=chat.conversation_id, client_id="a", text="Yes please",
                            reply_to=chat.seq)
        user_sends(sender=user, conversation_id=chat.conversation_id, client_id="b", text="make it 3 people",
                   reply_to=yes.seq)
    webhooks.deliver_due()

    posted = [post["json"]["message"] for post in receiver.posts if post["json"]["event"] == "message"]
    assert [(m["text"]["body"], m.get("context")) for m in posted] == [
        ("Yes please", {"id": offer["id"]}), ("make it 3 people", {"id": f"in_{yes.pk}"})]


@pytest.mark.parametrize("context, status, code", [
    ("in_1", 400, "invalid"),  # not an object: the error names `context` itself
    ({}, 400, "invalid"),
    ({"message_id": 5}, 400, "invalid"),
    ({"message_id": ""}, 400, "invalid"),
    ({"message_id": "in_abc"}, 404, "not_found"),
    ({"message_id": "in_٣"}, 404, "not_found"),
    ({"message_id": "msg_nothing-like-it"}, 404, "not_found"),
    ("elsewhere", 404, "not_found"),  # a message of someone else's chat
    ("another app's", 404, "not_found"),  # a message another app sent this user
])
def test_a_context_naming_no_message_of_this_chat_is_refused_and_nothing_is_sent(context, status, code):
    app, client = app_client()
    user = opted_in_user(app)
    if context == "elsewhere":
        stranger_chat = direct_conversation(UserFactory(), UserFactory())
        context = {"message_id": f"in_{sent_message(stranger_chat.memberships.first().user, stranger_chat).pk}"}
    elif context == "another app's":
        other_app, other_client = app_client()
        apps.opt_in(app=other_app, user=user)
        [theirs] = other_client.post(MESSAGES, text(user.phone_number, "from the other app")).json()["messages"]
        context = {"message_id": theirs["id"]}
    before = (Message.objects.count(), OutboundMessage.objects.filter(app=app).count())

    response = client.post(MESSAGES, text(user.phone_number, "hi", context=context))

    error = response.json()["error"]
    field = "context" if context == "in_1" else "context.message_id"
    assert (response.status_code, error["code"], error["field"]) == (status, code, field)
    assert (Message.objects.count(), OutboundMessage.objects.filter(app=app).count()) == before
    assert usage.usage_report(app=app)["months"][0]["messages"] == 0  # nothing counted against the app
