"""Searching a chat's messages (GET conversations/{id}/search?q=): what one can see there whose text
or caption contains the words, in any case, newest first, page by page; nothing of others' chats,
of before one joined, of after one left, nor what was deleted."""

import pytest

from broker.services import conversations, deletion, reactions
from broker.services import media as media_service
from broker.services.send import send_message
from tests import media_samples as samples
from tests.factories import direct_conversation, group_conversation, saved_contacts, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient

pytestmark = pytest.mark.django_db


def search(token: str, conversation_id: int, **query):
    return SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/search", query)


def found(token: str, conversation_id: int, **query) -> list[str]:
    response = search(token, conversation_id, **query)
    assert response.status_code == 200, response.content
    return [m["text"] for m in response.json()["results"]]


def test_finds_texts_and_captions_in_any_case_newest_first_with_their_statuses():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    sent_message(bob, chat, "Dinner on Friday?")
    sent_message(alice, chat, "Friday works")
    sent_message(bob, chat, "great")
    photo = media_service.upload(uploader=bob, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))
    send_message(sender=bob, conversation_id=chat.pk, client_id="p", text="the place for FRIDAY", media_id=photo.pk)

    response = search(alice_token, chat.pk, q="friday")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [m["text"] for m in results] == ["the place for FRIDAY", "Friday works", "Dinner on Friday?"]
    assert results[0]["media"]["id"] == photo.pk
    assert results[1]["sender"] == alice.pk and results[1]["status"] == "read"  # Bob wrote after it
    assert response.json()["has_more"] is False
    assert found(alice_token, chat.pk, q="lunch") == []


def test_pages_go_back_with_before_seq():
    alice, alice_token = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])
    seqs = [sent_message(alice, chat, f"note {n}").seq for n in range(5)]

    first = search(alice_token, chat.pk, q="note", limit=2).json()
    second = search(alice_token, chat.pk, q="note", limit=2, before_seq=first["results"][-1]["seq"]).json()

    assert ([m["seq"] for m in first["results"]], first["has_more"]) == ([seqs[4], seqs[3]], True)
    assert [m["seq"] for m in second["results"]] == [seqs[2], seqs[1]]


def test_only_what_one_can_see_is_found():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    eve, eve_token = user_with_token()
    group = group_conversation(bob, eve, title="Plans")
    sent_message(bob, group, "secret plan before Alice")
    saved_contacts(bob, alice)
    conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[alice.pk])
    sent_message(bob, group, "plan A")
    oops = sent_message(bob, group, "plan B, the wrong one")
    deletion.delete_for_everyone(user=bob, conversation_id=group.pk, seq=oops.seq)
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=alice.pk)
    sent_message(bob, group, "plan C, after Alice left")

    assert found(alice_token, group.pk, q="plan") == ["plan A"]  # left: up to her going, still hers to search
    assert found(eve_token, group.pk, q="plan") == ["plan C, after Alice left", "plan A", "secret plan before Alice"]
    stranger = search(user_with_token()[1], group.pk, q="plan")
    assert (stranger.status_code, stranger.json()["error"]["field"]) == (404, "conversation")


@pytest.mark.parametrize("query", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 101}, {"q": "a", "limit": 0},
                                   {"q": "a", "before_seq": "soon"}])
def test_a_search_that_is_not_one_is_refused_naming_the_field(query):
    alice, alice_token = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])

    response = search(alice_token, chat.pk, **query)

    expected = "q" if set(query) <= {"q"} else next(k for k in query if k != "q")
    assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]) == (
        400, "invalid", expected)


def test_a_match_carries_its_reactions_as_history_does():
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    chat = direct_conversation(alice, bob)
    party = sent_message(alice, chat, "party at mine")
    reactions.react(user=bob, conversation_id=chat.pk, seq=party.seq, emoji="🎉")

    [match] = search(alice_token, chat.pk, q="party").json()["results"]

    assert match["reactions"] == [{"emoji": "🎉", "user": bob.pk}]
