"""Muting a chat (PUT / DELETE conversations/{id}/mute): its messages still arrive and count as
unread, the conversation says it is muted and until when, and every device of the person who muted
it is told at once; a mute ends by itself when its time is up."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from broker.errors import InvalidInput
from broker.services import conversations, muting
from storage.models import Membership
from tests.factories import direct_conversation, group_conversation, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

EIGHT_HOURS = 8 * 3600


def mute(token: str, conversation_id: int, body: dict):
    return SchemaCheckedClient(token).put(f"/api/v1/conversations/{conversation_id}/mute", body, format="json")


def unmute(token: str, conversation_id: int):
    return SchemaCheckedClient(token).delete(f"/api/v1/conversations/{conversation_id}/mute")


def shown(token: str, conversation_id: int) -> dict:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.content
    return response.json()


async def test_muting_shows_until_when_on_every_device_of_the_muter_only_and_messages_still_come(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    alice_phone, alice_laptop, b = await sockets(alice_token), await sockets(alice_token), await sockets(bob_token)
    before = timezone.now()

    response = await db(mute)(alice_token, chat.pk, {"duration": EIGHT_HOURS})

    assert response.status_code == 200, response.content
    body = response.json()
    until = parse_datetime(body["muted_until"])
    assert body["muted"] is True
    assert before + timedelta(seconds=EIGHT_HOURS) <= until <= timezone.now() + timedelta(seconds=EIGHT_HOURS)
    for device in (alice_phone, alice_laptop):
        event = await device.receive_type("conversation.muted")
        assert event == {"type": "conversation.muted", "conversation": chat.pk, "muted": True,
                         "muted_until": body["muted_until"]}
    assert await b.nothing_more()
    assert (await db(shown)(bob_token, chat.pk))["muted"] is False  # hers alone

    # Muted is not deaf: Bob's messages reach her and wait for her as unread.
    sent = await b.send_message(chat.pk, "are you there?")
    assert (await alice_phone.receive_new(sent["seq"]))["message"]["text"] == "are you there?"
    again = await db(shown)(alice_token, chat.pk)
    assert (again["muted"], again["muted_until"], again["unread_count"]) == (True, body["muted_until"], 1)

    assert (await db(unmute)(alice_token, chat.pk)).status_code == 204
    for device in (alice_phone, alice_laptop):
        assert (await device.receive_type("conversation.muted")) == {
            "type": "conversation.muted", "conversation": chat.pk, "muted": False, "muted_until": None}
    assert ((await db(shown)(alice_token, chat.pk))["muted"], (await db(unmute)(alice_token, chat.pk)).status_code) == (
        False, 204)


def test_a_mute_until_unmuted_has_no_end_and_a_new_mute_replaces_the_old():
    alice, alice_token = user_with_token()
    group = group_conversation(alice, user_with_token()[0], title="Neighbours")

    forever = mute(alice_token, group.pk, {"duration": None})
    assert (forever.status_code, forever.json()["muted"], forever.json()["muted_until"]) == (200, True, None)
    assert shown(alice_token, group.pk)["muted"] is True

    week = mute(alice_token, group.pk, {"duration": 7 * 24 * 3600}).json()
    assert week["muted"] is True and parse_datetime(week["muted_until"]) > timezone.now() + timedelta(days=6)


def test_a_mute_ends_by_itself_when_its_time_is_up():
    alice, alice_token = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])

    muting.mute(user=alice, conversation_id=chat.pk, duration=EIGHT_HOURS, now=timezone.now() - timedelta(hours=9))

    assert (shown(alice_token, chat.pk)["muted"], shown(alice_token, chat.pk)["muted_until"]) == (False, None)


@pytest.mark.parametrize("body", [{}, {"duration": 0}, {"duration": 59}, {"duration": "soon"}, {"duration": True},
                                  {"duration": 367 * 24 * 3600}, {"duration": [60]}])
def test_a_duration_that_is_not_one_is_refused_naming_it_and_changes_nothing(body):
    alice, alice_token = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])
    mute(alice_token, chat.pk, {"duration": EIGHT_HOURS})
    muted_until = Membership.objects.get(user=alice).muted_until

    response = mute(alice_token, chat.pk, body)

    assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]) == (
        400, "invalid", "duration")
    assert Membership.objects.get(user=alice).muted_until == muted_until


def test_the_service_refuses_what_the_api_would_not_pass_either():
    alice, _ = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])
    for duration in (True, 1.5, "3600", 30):
        with pytest.raises(InvalidInput) as refused:
            muting.mute(user=alice, conversation_id=chat.pk, duration=duration)
        assert refused.value.field == "duration"


def test_only_a_member_mutes_a_conversation():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    eve, eve_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    for token, code, error in ((eve_token, 404, "not_found"), (bob_token, 403, "forbidden")):
        for response in (mute(token, group.pk, {"duration": EIGHT_HOURS}), unmute(token, group.pk)):
            assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]) == (
                code, error, "conversation")
    left = shown(bob_token, group.pk)  # still in his list, read-only: nothing comes from it to mute
    assert (left["left"], left["muted"], left["muted_until"]) == (True, False, None)
    assert mute(alice_token, 10**12, {"duration": EIGHT_HOURS}).status_code == 404
