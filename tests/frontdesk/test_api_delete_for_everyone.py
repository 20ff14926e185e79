"""A sender deleting their own message for everyone (DELETE conversations/{id}/messages/{seq}): it
keeps its place, loses its content, and every member's devices are told, live or at their next
connect."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from broker.services import conversations
from broker.services import media as media_service
from broker.services.send import send_message
from storage.models import Media, Message
from tests import media_samples as samples
from tests.factories import direct_conversation, group_conversation, saved_contacts, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def url(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}"


def history(token: str, conversation_id: int) -> list[tuple]:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.content
    return [(m["seq"], m["kind"], m["text"], m["sender"], m["event"]) for m in response.json()["results"]]


def delete(token: str, conversation_id: int, seq: int):
    return SchemaCheckedClient(token).delete(url(conversation_id, seq))


async def test_every_device_of_every_member_is_told_live(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    alice_phone, alice_laptop, b = await sockets(alice_token), await sockets(alice_token), await sockets(bob_token)
    oops = await alice_phone.send_message(chat.pk, "wrong chat, sorry")
    await b.receive_new(oops["seq"])

    response = await db(delete)(alice_token, chat.pk, oops["seq"])

    assert response.status_code == 204
    deleted = {"action": "message_deleted", "by": alice.pk}
    for member in (alice_phone, alice_laptop, b):
        notice = (await member.receive_new(oops["seq"] + 1))["message"]
        assert (notice["kind"], notice["sender"], notice["event"]) == ("system", None, {**deleted, "seq": oops["seq"]})
    assert await db(history)(bob_token, chat.pk) == [
        (oops["seq"], "removed", "", alice.pk, deleted),  # its place kept: no gap to acknowledge past
        (oops["seq"] + 1, "system", f"{alice.display_name} deleted a message", None, {**deleted, "seq": oops["seq"]}),
    ]


async def test_a_member_who_was_offline_catches_up_with_it_deleted(sockets):
    (alice, alice_token), (bob, _), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol, title="Trip")
    oops = await db(sent_message)(alice, group, "the door code is 4711")

    assert (await db(delete)(alice_token, group.pk, oops.seq)).status_code == 204
    c = await sockets(carol_token)

    caught_up = {}
    for event in await c.drain():
        if event["type"] == "message.new":
            caught_up.setdefault(event["message"]["seq"], event["message"])
    assert (caught_up[oops.seq]["kind"], caught_up[oops.seq]["text"]) == ("removed", "")
    assert caught_up[oops.seq + 1]["event"] == {"action": "message_deleted", "seq": oops.seq, "by": alice.pk}


def test_only_the_sender_deletes_and_only_their_messages():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    carol, carol_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    message = sent_message(alice, group, "mine")

    others = delete(bob_token, group.pk, message.seq)
    system = delete(alice_token, group.pk, 1)  # "group created"
    outsider = delete(carol_token, group.pk, message.seq)
    missing = delete(alice_token, group.pk, 99)

    assert (others.status_code, others.json()["error"]["code"], others.json()["error"]["field"]) == (403, "forbidden", "seq")
    assert (system.status_code, system.json()["error"]["field"]) == (403, "seq")
    assert (outsider.status_code, outsider.json()["error"]["field"]) == (404, "conversation")
    assert (missing.status_code, missing.json()["error"]["field"]) == (404, "seq")
    assert Message.objects.get(pk=message.pk).text == "mine"
    assert Message.objects.filter(conversation=group).count() == 2  # no notice for any of them


def test_deleting_twice_is_no_error_and_tells_nobody_twice():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "oops")

    assert delete(alice_token, chat.pk, message.seq).status_code == 204
    assert delete(alice_token, chat.pk, message.seq).status_code == 204

    assert list(Message.objects.filter(conversation=chat).values_list("kind", flat=True)) == ["removed", "system"]


def test_too_old_to_delete_for_everyone(settings):
    settings.MESSENGER = {**settings.MESSENGER, "DELETE_FOR_EVERYONE_SECONDS": 3600}
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    old = sent_message(alice, chat, "yesterday's news")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1, seconds=5))
    recent = sent_message(alice, chat, "just now")

    refused = delete(alice_token, chat.pk, old.seq)

    assert refused.status_code == 403
    assert refused.json()["error"] == {"code": "forbidden", "field": "seq",
                                       "message": "A message can be deleted for everyone only within 1 hour of sending it."}
    assert Message.objects.get(pk=old.pk).text == "yesterday's news"
    assert delete(alice_token, chat.pk, recent.seq).status_code == 204


def test_history_from_before_joining_is_not_the_members_to_delete():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    carol, carol_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    before = sent_message(alice, group, "before carol")
    saved_contacts(alice, carol)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])

    hidden = delete(carol_token, group.pk, before.seq)

    assert (hidden.status_code, hidden.json()["error"]["field"]) == (404, "seq")


def test_a_deleted_photo_is_gone_for_the_recipient(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    photo = media_service.upload(uploader=alice, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    message, _ = send_message(sender=alice, conversation_id=chat.pk, client_id="p1", media_id=photo.pk, text="look")

    assert delete(alice_token, chat.pk, message.seq).status_code == 204

    assert SchemaCheckedClient(bob_token).get(f"/api/v1/media/{photo.pk}").status_code == 404
    assert not Media.objects.filter(pk=photo.pk).exists()
    assert not default_storage.exists(photo.file.name)


def test_a_bad_seq_is_named():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)

    response = delete(alice_token, chat.pk, 0)

    assert (response.status_code, response.json()["error"]["field"]) == (400, "seq")


def unread(token: str, conversation_id: int) -> int:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.content
    return response.json()["unread_count"]


def test_a_deletion_is_never_unread_only_what_the_chat_shows_is():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    first = sent_message(alice, chat, "oops")

    assert delete(alice_token, chat.pk, first.seq).status_code == 204
    assert unread(alice_token, chat.pk) == 0  # on her other devices, and after a reload
    assert unread(bob_token, chat.pk) == 1  # "This message was deleted", not its notice too

    second = sent_message(alice, chat, "again")
    reply = sent_message(bob, chat, "what?")  # not read by alice yet
    assert delete(alice_token, chat.pk, second.seq).status_code == 204
    assert unread(alice_token, chat.pk) == 1  # bob's reply stays unread; the notice after it is not
    assert reply.seq == second.seq + 1


def test_a_groups_admin_deletes_a_members_message_and_is_named():
    alice, alice_token = user_with_token(display_name="Alice Admin")
    bob, bob_token = user_with_token()
    carol, carol_token = user_with_token()
    group = group_conversation(alice, bob, carol, title="Trip")
    spam = sent_message(bob, group, "cheap watches")
    alices = sent_message(alice, group, "please don't")

    assert delete(alice_token, group.pk, spam.seq).status_code == 204
    refused = delete(carol_token, group.pk, alices.seq)  # a member is no admin

    deleted_as_admin = {"action": "message_deleted", "by": alice.pk}
    assert history(carol_token, group.pk)[-3:] == [
        (spam.seq, "removed", "", bob.pk, deleted_as_admin),
        (alices.seq, "text", "please don't", alice.pk, None),
        (alices.seq + 1, "system", "Alice Admin deleted a message as admin", None, {**deleted_as_admin, "seq": spam.seq}),
    ]
    assert (refused.status_code, refused.json()["error"]["field"]) == (403, "seq")
    assert unread(bob_token, group.pk) > 0 and unread(alice_token, group.pk) == 0


def test_after_leaving_a_group_ones_messages_there_stay_as_they_are():
    alice, _ = user_with_token()
    bob, bob_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    mine = sent_message(bob, group, "bye all")
    conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    refused = delete(bob_token, group.pk, mine.seq)

    assert refused.status_code == 403
    assert refused.json()["error"] == {"code": "forbidden", "field": "conversation",
                                       "message": "You are no longer a participant in this group."}
    assert Message.objects.get(pk=mine.pk).text == "bye all"


def test_a_history_page_read_as_its_photo_is_deleted_shows_it_deleted(settings, tmp_path, monkeypatch):
    """Bob loads his chat at the moment Alice deletes her photo in it: the page's messages were read
    before her deletion committed, its media after her photo was released. The page shows it as it
    now is (deleted), not a server error."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    photo = media_service.upload(uploader=alice, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    message, _ = send_message(sender=alice, conversation_id=chat.pk, client_id="p1", media_id=photo.pk, text="look")
    read_media = Media.objects.in_bulk

    def deleted_meanwhile(*args, **kwargs):
        if not Message.objects.filter(pk=message.pk, kind="removed").exists():
            assert delete(alice_token, chat.pk, message.seq).status_code == 204
        return read_media(*args, **kwargs)

    monkeypatch.setattr(Media.objects, "in_bulk", deleted_meanwhile)
    page = SchemaCheckedClient(bob_token).get(f"/api/v1/conversations/{chat.pk}/messages")

    assert page.status_code == 200, page.content
    shown = page.json()["results"][0]
    assert (shown["seq"], shown["kind"], shown["text"], shown["media"], shown["event"]) == (
        message.seq, "removed", "", None, {"action": "message_deleted", "by": alice.pk})


@pytest.mark.parametrize("thumbnail", [False, True], ids=["file", "thumbnail"])
def test_a_photo_fetched_as_it_is_deleted_is_not_found(settings, tmp_path, monkeypatch, thumbnail):
    """Bob's app fetches Alice's photo at the moment she deletes it for everyone: he was allowed to
    see it when asked, and its file is gone by the time it is read. He is told it is not found (as
    a moment later), not a server error or a download cut short."""
    from broker.services import deletion

    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, _ = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    photo = media_service.upload(uploader=alice, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    message, _ = send_message(sender=alice, conversation_id=chat.pk, client_id="p1", media_id=photo.pk)
    allowed = media_service.readable_media

    def deleted_meanwhile(**kwargs):
        media = allowed(**kwargs)
        deletion.delete_for_everyone(user=alice, conversation_id=chat.pk, seq=message.seq)
        return media

    monkeypatch.setattr(media_service, "readable_media", deleted_meanwhile)
    response = SchemaCheckedClient(bob_token).get(f"/api/v1/media/{photo.pk}" + ("/thumbnail" if thumbnail else ""))

    assert not default_storage.exists(photo.file.name)
    assert response.status_code == 404
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("not_found", "media")
