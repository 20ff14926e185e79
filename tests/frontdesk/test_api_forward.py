"""Forwarding (POST conversations/{id}/forward): a message one can see in one chat is sent on to
another as a new message of one's own, with its text and media, marked `forwarded` for everyone who
gets it, live and in history; what one cannot see, or what is no person's message, is not."""

import pytest

from broker.services import conversations, deletion, editing
from broker.services import media as media_service
from tests import media_samples as samples
from broker.services.send import send_message
from tests.factories import direct_conversation, group_conversation, saved_contacts, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def forward(token: str, to: int, source: dict, client_id: str = "fwd-1"):
    return SchemaCheckedClient(token).post(f"/api/v1/conversations/{to}/forward",
                                           {"client_id": client_id, "forward": source}, format="json")


def history(token: str, conversation_id: int) -> list[dict]:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def refusal(response) -> tuple:
    return response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]


async def test_a_forwarded_message_reaches_the_other_chat_live_as_the_forwarders_marked_forwarded(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    with_bob = await db(direct_conversation)(alice, bob)
    with_carol = await db(direct_conversation)(alice, carol)
    tip = await db(sent_message)(bob, with_bob, "The bakery on 5th opens at 7")
    c = await sockets(carol_token)

    response = await db(forward)(alice_token, with_carol.pk, {"conversation": with_bob.pk, "seq": tip.seq})

    assert response.status_code == 201, response.content
    copy = response.json()
    assert (copy["conversation"], copy["sender"], copy["text"], copy["forwarded"], copy["reply_to"]) == (
        with_carol.pk, alice.pk, "The bakery on 5th opens at 7", True, None)
    live = (await c.receive_new(copy["seq"]))["message"]
    assert (live["text"], live["sender"], live["forwarded"]) == (copy["text"], alice.pk, True)
    assert [(m["text"], m["forwarded"]) for m in await db(history)(carol_token, with_carol.pk)] == [
        ("The bakery on 5th opens at 7", True)]
    # The original is as it was; and a message written, not forwarded, says so.
    assert [m["forwarded"] for m in await db(history)(bob_token, with_bob.pk)] == [False]

    again = await db(forward)(alice_token, with_carol.pk, {"conversation": with_bob.pk, "seq": tip.seq})
    assert (again.status_code, again.json()["id"]) == (200, copy["id"])  # a retry: the same copy


def test_a_photo_goes_on_with_its_caption_and_the_new_chat_can_open_it_and_the_copy_outlives_edits():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    dave, dave_token = user_with_token()
    with_bob = direct_conversation(alice, bob)
    photo = media_service.upload(uploader=bob, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    shared, _ = send_message(sender=bob, conversation_id=with_bob.pk, client_id="photo", text="the view",
                             media_id=photo.pk)
    family = group_conversation(alice, dave, title="Family")
    assert SchemaCheckedClient(dave_token).get(f"/api/v1/media/{photo.pk}").status_code == 404  # not his to see yet

    copy = forward(alice_token, family.pk, {"conversation": with_bob.pk, "seq": shared.seq}).json()
    editing.edit_message(user=bob, conversation_id=with_bob.pk, seq=shared.seq, text="the view from the top")

    assert (copy["text"], copy["media"]["id"], copy["forwarded"]) == ("the view", photo.pk, True)
    assert SchemaCheckedClient(dave_token).get(f"/api/v1/media/{photo.pk}").status_code == 200
    [seen] = [m for m in history(dave_token, family.pk) if m["kind"] == "text"]
    assert (seen["text"], seen["media"]["id"]) == ("the view", photo.pk)  # as sent, not as edited since


def test_what_one_cannot_see_or_is_no_persons_message_is_not_forwarded_and_nothing_is_sent():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    carol, carol_token = user_with_token()
    eve, _ = user_with_token()
    with_bob = direct_conversation(alice, bob)
    with_carol = direct_conversation(alice, carol)
    not_hers = direct_conversation(bob, eve)
    secret = sent_message(bob, not_hers, "between us")
    gone = sent_message(bob, with_bob, "oops")
    deletion.delete_for_everyone(user=bob, conversation_id=with_bob.pk, seq=gone.seq)
    group = group_conversation(bob, eve, title="Before Alice")
    earlier = sent_message(bob, group, "before she came")
    saved_contacts(bob, alice)
    conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[alice.pk])
    fine = sent_message(bob, with_bob, "fine")

    cases = [
        ({"conversation": not_hers.pk, "seq": secret.seq}, (404, "not_found", "forward.conversation")),
        ({"conversation": with_bob.pk, "seq": fine.seq + 5}, (404, "not_found", "forward.seq")),
        ({"conversation": with_bob.pk, "seq": gone.seq}, (400, "invalid", "forward.seq")),  # deleted for everyone
        ({"conversation": with_bob.pk, "seq": gone.seq + 1}, (400, "invalid", "forward.seq")),  # its notice
        ({"conversation": group.pk, "seq": earlier.seq}, (404, "not_found", "forward.seq")),  # before she joined
        ({"conversation": with_bob.pk}, (400, "invalid", "forward.seq")),
        ({"conversation": "x", "seq": 1}, (400, "invalid", "forward.conversation")),
        ("seq 1", (400, "invalid", "forward")),
    ]
    for source, expected in cases:
        assert refusal(forward(alice_token, with_carol.pk, source)) == expected, source
    # To a chat that is not hers, even what she may forward goes nowhere.
    assert refusal(forward(alice_token, not_hers.pk, {"conversation": with_bob.pk, "seq": fine.seq}))[0] == 404
    assert history(carol_token, with_carol.pk) == []


def test_from_a_group_one_has_left_what_one_saw_there_may_still_be_forwarded():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    carol, carol_token = user_with_token()
    group = group_conversation(bob, alice, title="Old team")
    kept = sent_message(bob, group, "the wiki password is in the vault")
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=alice.pk)
    after = sent_message(bob, group, "after she left")
    with_carol = direct_conversation(alice, carol)

    assert forward(alice_token, with_carol.pk, {"conversation": group.pk, "seq": kept.seq}).status_code == 201
    late = forward(alice_token, with_carol.pk, {"conversation": group.pk, "seq": after.seq}, client_id="fwd-2")
    assert refusal(late) == (404, "not_found", "forward.seq")
    assert [m["text"] for m in history(carol_token, with_carol.pk)] == ["the wiki password is in the vault"]
