"""A sender editing their own message (PATCH conversations/{id}/messages/{seq}): it keeps its place,
takes the new text and `edited_at`, and every member's devices are told by a notice, live or at
their next connect, then read the message again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker.services import conversations, deletion, moderation, receipts
from broker.services import media as media_service
from broker.services.send import send_message
from storage.models import Message
from tests import media_samples as samples
from tests.factories import direct_conversation, group_conversation, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def url(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}"


def edit(token: str, conversation_id: int, seq: int, text: str = "new text"):
    return SchemaCheckedClient(token).patch(url(conversation_id, seq), {"text": text}, format="json")


def history(token: str, conversation_id: int, **query) -> list[dict]:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/messages", query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def unread(token: str, conversation_id: int) -> int:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.content
    return response.json()["unread_count"]


def error_of(response) -> tuple:
    return response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]


async def test_every_device_of_every_member_is_told_live_and_reads_the_new_text(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    alice_phone, alice_laptop, b = await sockets(alice_token), await sockets(alice_token), await sockets(bob_token)
    typo = await alice_phone.send_message(chat.pk, "see you at 8")
    assert (await b.receive_new(typo["seq"]))["message"]["edited_at"] is None

    response = await db(edit)(alice_token, chat.pk, typo["seq"], "see you at 9")

    assert response.status_code == 200
    answer = response.json()
    assert (answer["seq"], answer["text"], answer["sender"], answer["kind"]) == (typo["seq"], "see you at 9", alice.pk, "text")
    assert answer["edited_at"] is not None
    for member in (alice_phone, alice_laptop, b):
        notice = (await member.receive_new(typo["seq"] + 1))["message"]
        assert (notice["kind"], notice["sender"], notice["text"]) == ("system", None, f"{alice.display_name} edited a message")
        assert notice["event"] == {"action": "message_edited", "seq": typo["seq"], "by": alice.pk}
        assert notice["edited_at"] is None
    # What a device holding the old copy asks for on the notice.
    again = await db(history)(bob_token, chat.pk, after_seq=typo["seq"] - 1, limit=1)
    assert [(m["seq"], m["text"], m["edited_at"]) for m in again] == [(typo["seq"], "see you at 9", answer["edited_at"])]


async def test_a_member_who_was_offline_catches_up_with_the_edited_text(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol, title="Trip")
    typo = await db(sent_message)(alice, group, "we meet at the statoin")
    # Bob's phone has the old copy (acknowledged); carol's was offline.
    await db(receipts.mark_delivered)(user=bob, conversation_id=group.pk, seq=typo.seq)

    assert (await db(edit)(alice_token, group.pk, typo.seq, "we meet at the station")).status_code == 200
    c = await sockets(carol_token)
    b = await sockets(bob_token)

    caught_up = {}
    for event in await c.drain():
        if event["type"] == "message.new":
            caught_up.setdefault(event["message"]["seq"], event["message"])
    assert caught_up[typo.seq]["text"] == "we meet at the station"
    assert caught_up[typo.seq]["edited_at"] is not None
    assert caught_up[typo.seq + 1]["event"] == {"action": "message_edited", "seq": typo.seq, "by": alice.pk}
    # Bob had it already: catch-up brings him the notice only, and he reads the message again.
    bobs = [e["message"]["seq"] for e in await b.drain() if e["type"] == "message.new"]
    assert bobs == [typo.seq + 1]
    assert (await db(history)(bob_token, group.pk, after_seq=typo.seq - 1, limit=1))[0]["text"] == "we meet at the station"


def test_history_and_the_chat_list_carry_the_edit():
    alice, alice_token = user_with_token(display_name="Alice")
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "helo")
    untouched = sent_message(bob, chat, "hi")

    answer = edit(alice_token, chat.pk, message.seq, "hello").json()

    listed = [(m["seq"], m["kind"], m["text"], m["edited_at"], m["event"]) for m in history(bob_token, chat.pk)]
    assert listed == [
        (message.seq, "text", "hello", answer["edited_at"], None),
        (untouched.seq, "text", "hi", None, None),
        (untouched.seq + 1, "system", "Alice edited a message", None,
         {"action": "message_edited", "seq": message.seq, "by": alice.pk}),
    ]
    stored = Message.objects.get(pk=message.pk)
    assert stored.created_at < stored.edited_at
    # The edit's time is its notice's: a copy with it is the edited one.
    assert stored.edited_at == Message.objects.get(conversation=chat, seq=untouched.seq + 1).created_at
    last = SchemaCheckedClient(bob_token).get("/api/v1/conversations").json()[0]["last_message"]
    assert last["event"] == {"action": "message_edited", "seq": message.seq, "by": alice.pk}


def test_only_the_sender_edits_and_only_their_messages():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    carol, carol_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")  # alice is its admin: no matter
    message = sent_message(bob, group, "bobs")

    others = edit(alice_token, group.pk, message.seq)
    system = edit(alice_token, group.pk, 1)  # "group created"
    outsider = edit(carol_token, group.pk, message.seq)
    missing = edit(bob_token, group.pk, 99)

    assert error_of(others) == (403, "forbidden", "seq")
    assert others.json()["error"]["message"] == "You can edit only messages you sent."
    assert error_of(system) == (403, "forbidden", "seq")
    assert error_of(outsider) == (404, "not_found", "conversation")
    assert error_of(missing) == (404, "not_found", "seq")
    assert Message.objects.get(pk=message.pk).text == "bobs"
    assert Message.objects.filter(conversation=group).count() == 2  # no notice for any of them


def test_too_old_to_edit(settings):
    settings.MESSENGER = {**settings.MESSENGER, "EDIT_SECONDS": 900}
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    old = sent_message(alice, chat, "a while ago")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=15, seconds=5))
    recent = sent_message(alice, chat, "just now")

    refused = edit(alice_token, chat.pk, old.seq, "rewritten")

    assert refused.status_code == 403
    assert refused.json()["error"] == {"code": "forbidden", "field": "seq",
                                       "message": "A message can be edited only within 15 minutes of sending it."}
    assert Message.objects.get(pk=old.pk).text == "a while ago"
    assert edit(alice_token, chat.pk, recent.seq, "rewritten").status_code == 200


def test_the_same_text_again_changes_nothing_and_tells_nobody():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "as it was")

    response = edit(alice_token, chat.pk, message.seq, "as it was")

    assert response.status_code == 200
    assert (response.json()["text"], response.json()["edited_at"]) == ("as it was", None)
    assert Message.objects.filter(conversation=chat).count() == 1
    first = edit(alice_token, chat.pk, message.seq, "changed").json()
    again = edit(alice_token, chat.pk, message.seq, "changed").json()
    assert again["edited_at"] == first["edited_at"]
    assert Message.objects.filter(conversation=chat).count() == 2  # one notice, for the one change


@pytest.mark.parametrize("body, expected", [
    ({"text": ""}, "text must not be empty."),
    ({"text": "   \n"}, "text must not be empty."),
    ({}, None),
    ({"text": None}, None),
    ({"text": 42}, "text must be a string, not a number."),
    ({"text": "x" * 4097}, "text is longer than 4096 characters."),
    ({"text": "nul\x00"}, None),
])
def test_bad_text_is_a_400_naming_it_and_changes_nothing(body, expected):
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "kept")

    response = SchemaCheckedClient(alice_token).patch(url(chat.pk, message.seq), body, format="json")

    assert error_of(response) == (400, "invalid", "text")
    if expected:
        assert response.json()["error"]["message"] == expected
    assert Message.objects.get(pk=message.pk).text == "kept"
    assert Message.objects.filter(conversation=chat).count() == 1


def test_text_is_kept_as_typed_as_a_sends_is():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "list")

    response = edit(alice_token, chat.pk, message.seq, "  - eggs\n  - milk\n")

    assert response.json()["text"] == "  - eggs\n  - milk\n"


def test_a_bad_seq_is_named():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)

    assert error_of(edit(alice_token, chat.pk, 0)) == (400, "invalid", "seq")


def test_a_caption_may_be_edited_and_emptied(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    photo = media_service.upload(uploader=alice, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    message, _ = send_message(sender=alice, conversation_id=chat.pk, client_id="p1", media_id=photo.pk, text="lok")

    fixed = edit(alice_token, chat.pk, message.seq, "look")
    emptied = edit(alice_token, chat.pk, message.seq, "")

    assert fixed.status_code == 200 and fixed.json()["text"] == "look" and fixed.json()["media"]["id"] == photo.pk
    assert emptied.status_code == 200 and emptied.json()["text"] == ""
    shown = history(bob_token, chat.pk)[0]
    assert (shown["text"], shown["media"]["id"]) == ("", photo.pk) and shown["edited_at"] is not None


def test_a_deleted_or_taken_down_message_cannot_be_edited():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    deleted = sent_message(alice, chat, "oops")
    taken_down = sent_message(alice, chat, "rude")
    deletion.delete_for_everyone(user=alice, conversation_id=chat.pk, seq=deleted.seq)
    moderation.take_down(message_id=taken_down.pk)
    count = Message.objects.filter(conversation=chat).count()

    for message in (deleted, taken_down):
        refused = edit(alice_token, chat.pk, message.seq, "something else")
        assert error_of(refused) == (403, "forbidden", "seq")
        assert refused.json()["error"]["message"] == "This message was deleted; it cannot be edited."
        assert Message.objects.get(pk=message.pk).text == ""
    assert Message.objects.filter(conversation=chat).count() == count


def test_an_edited_message_deleted_later_keeps_nothing_of_its_edit():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "first")
    edit(alice_token, chat.pk, message.seq, "second")

    deletion.delete_for_everyone(user=alice, conversation_id=chat.pk, seq=message.seq)

    shown = history(bob_token, chat.pk)[0]
    assert (shown["kind"], shown["text"], shown["edited_at"]) == ("removed", "", None)


def test_ones_messages_from_before_being_added_back_are_not_ones_to_edit():
    alice, _ = user_with_token()
    bob, bob_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    before = sent_message(bob, group, "before")
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=bob.pk)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[bob.pk])

    hidden = edit(bob_token, group.pk, before.seq, "edited")

    assert error_of(hidden) == (404, "not_found", "seq")  # not in his history since he came back
    assert Message.objects.get(pk=before.pk).text == "before"


def test_after_leaving_a_group_ones_messages_there_stay_as_they_are():
    alice, _ = user_with_token()
    bob, bob_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    mine = sent_message(bob, group, "bye all")
    conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    refused = edit(bob_token, group.pk, mine.seq, "bye everyone")

    assert refused.status_code == 403
    assert refused.json()["error"] == {"code": "forbidden", "field": "conversation",
                                       "message": "You are no longer a participant in this group."}
    assert Message.objects.get(pk=mine.pk).text == "bye all"


def test_an_edit_is_never_unread_only_what_the_chat_shows_is():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    first = sent_message(alice, chat, "helo")

    assert edit(alice_token, chat.pk, first.seq, "hello").status_code == 200
    assert unread(alice_token, chat.pk) == 0  # on her other devices, and after a reload
    assert unread(bob_token, chat.pk) == 1  # her message, not its notice

    second = sent_message(alice, chat, "agian")
    sent_message(bob, chat, "what?")  # not read by alice yet
    assert edit(alice_token, chat.pk, second.seq, "again").status_code == 200
    assert unread(alice_token, chat.pk) == 1  # bob's message stays unread; the notice after it is not
    assert edit(alice_token, chat.pk, second.seq, "again!").status_code == 200
    assert unread(bob_token, chat.pk) == 0  # his reply read all before it; edits since add nothing
