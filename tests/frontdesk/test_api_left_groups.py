"""A group one left or was removed from, over REST: it stays in one's list, marked left, as it was
when one went, readable up to the notice of one's going and no further, until one deletes it."""

import pytest

from broker.services import conversations
from storage.models import Departure
from tests import media_samples as samples
from tests.factories import UserFactory, api_user, direct_conversation, group_conversation, saved_contacts, sent_message

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/v1/conversations"


def messages(client, conversation_id: int, **query) -> dict:
    response = client.get(f"{CONVERSATIONS}/{conversation_id}/messages", query)
    assert response.status_code == 200, response.content
    return response.json()


def seqs(page: dict) -> list[int]:
    return [m["seq"] for m in page["results"]]


@pytest.fixture
def left_group():
    """Bob left "Climbing" (Alice its admin, Carol in it) after "before" (seq 2); since then Dave
    was added and Alice wrote "after". (alice, bob, bob's client, group, the notice's seq)"""
    alice, carol, dave = UserFactory(display_name="Alice"), UserFactory(display_name="Carol"), UserFactory()
    bob, bob_client = api_user(display_name="Bob")
    group = group_conversation(alice, bob, carol, title="Climbing")
    sent_message(alice, group, "before")
    notice = conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)
    saved_contacts(alice, dave)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])
    sent_message(alice, group, "after")
    return alice, bob, bob_client, group, notice.seq


def test_a_group_one_left_stays_in_the_list_as_it_was_when_one_went(left_group):
    alice, bob, bob_client, group, notice_seq = left_group

    [listed] = bob_client.get(CONVERSATIONS).json()

    assert (listed["id"], listed["kind"], listed["title"], listed["left"], listed["role"]) == (
        group.pk, "group", "Climbing", True, None)
    assert listed["last_seq"] == notice_seq == 3
    assert listed["last_message"]["text"] == "Bob left"
    assert listed["unread_count"] == 3  # the group's creation, "before" and the notice: nothing after it
    # The members as they were when he went: not Dave, added since, nor Bob himself.
    assert sorted(m["user"]["display_name"] for m in listed["members"]) == ["Alice", "Carol"]
    assert bob_client.get(f"{CONVERSATIONS}/{group.pk}").json() == listed


def test_a_left_group_is_listed_by_the_notice_of_ones_going_not_by_what_came_after():
    alice, eve = UserFactory(), UserFactory()
    bob, bob_client = api_user()
    earlier = direct_conversation(bob, eve)
    sent_message(eve, earlier, "before the group")
    group = group_conversation(alice, bob)
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=bob.pk)
    later = direct_conversation(bob, alice)
    sent_message(alice, later, "later")
    sent_message(alice, group, "the group goes on")  # its newest activity, which Bob does not see

    listed = bob_client.get(CONVERSATIONS).json()

    assert [(c["id"], c["left"]) for c in listed] == [(later.pk, False), (group.pk, True), (earlier.pk, False)]
    assert listed[1]["last_activity_at"] == listed[1]["last_message"]["created_at"]


def test_the_history_of_a_left_group_pages_up_to_the_notice_and_no_further(left_group):
    _, _, bob_client, group, notice_seq = left_group

    newest = messages(bob_client, group.pk, limit=2)
    older = messages(bob_client, group.pk, before_seq=newest["results"][0]["seq"], limit=2)
    forward = messages(bob_client, group.pk, after_seq=1, limit=5)

    assert (seqs(newest), newest["has_more"]) == ([2, 3], True)
    assert newest["results"][-1]["event"]["action"] == "member_left"
    assert (seqs(older), older["has_more"]) == ([1], False)
    assert (seqs(forward), forward["has_more"]) == ([2, 3], False)
    assert messages(bob_client, group.pk, after_seq=notice_seq) == {"results": [], "has_more": False}
    assert messages(bob_client, group.pk, before_seq=99) == messages(bob_client, group.pk)


def test_a_member_added_later_who_leaves_reads_from_their_arrival_to_their_going():
    alice = UserFactory()
    dave, dave_client = api_user()
    group = group_conversation(alice, UserFactory())
    sent_message(alice, group, "before Dave")
    saved_contacts(alice, dave)
    [added] = conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])
    sent_message(alice, group, "while Dave was in")
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=dave.pk)

    page = messages(dave_client, group.pk)

    assert [m["text"] for m in page["results"]][1:] == ["while Dave was in", f"{alice.display_name} removed {dave.display_name}"]
    assert page["results"][0]["seq"] == added.seq and not page["has_more"]


def test_receipts_for_a_left_group_count_up_to_the_notice_and_repeat_harmlessly(left_group):
    _, _, bob_client, group, notice_seq = left_group
    url = f"{CONVERSATIONS}/{group.pk}"

    assert bob_client.post(f"{url}/delivered", {"seq": notice_seq}).status_code == 204
    assert bob_client.post(f"{url}/read", {"seq": 2}).status_code == 204
    assert bob_client.get(url).json()["unread_count"] == 1
    assert bob_client.post(f"{url}/read", {"seq": notice_seq}).status_code == 204
    # All acknowledged and read: the same receipts again change nothing and are no error.
    assert bob_client.post(f"{url}/delivered", {"seq": notice_seq}).status_code == 204
    assert bob_client.post(f"{url}/read", {"seq": 1}).status_code == 204
    shown = bob_client.get(url).json()
    assert (shown["unread_count"], shown["delivered_seq"], shown["read_seq"]) == (0, notice_seq, notice_seq)

    past = bob_client.post(f"{url}/read", {"seq": notice_seq + 1})
    assert (past.status_code, past.json()["error"]["field"]) == (400, "seq")
    assert "no longer a participant" in past.json()["error"]["message"]


def test_a_former_member_is_refused_what_only_members_do_saying_why(left_group):
    alice, bob, bob_client, group, _ = left_group
    url = f"{CONVERSATIONS}/{group.pk}"

    refusals = [
        bob_client.post(f"{url}/messages", {"client_id": "late", "text": "hello?"}),
        bob_client.post(f"{url}/members", {"user_ids": [alice.pk]}),
        bob_client.delete(f"{url}/members/{bob.pk}"),
        bob_client.patch(f"{url}/members/{alice.pk}", {"role": "member"}),
    ]

    for refused in refusals:
        assert refused.status_code == 403, refused.content
        assert refused.json()["error"] == {"code": "forbidden", "field": "conversation",
                                           "message": "You are no longer a participant in this group."}


def test_deleting_a_left_group_takes_it_off_the_list_for_good(left_group):
    _, bob, bob_client, group, notice_seq = left_group
    url = f"{CONVERSATIONS}/{group.pk}"

    assert bob_client.delete(url).status_code == 204

    assert bob_client.get(CONVERSATIONS).json() == []
    for gone in (bob_client.get(url), bob_client.get(f"{url}/messages"),
                 bob_client.post(f"{url}/delivered", {"seq": notice_seq}), bob_client.delete(url)):
        assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_found"), gone.content
    assert not Departure.objects.filter(user=bob).exists()


def test_only_a_group_one_has_left_can_be_deleted():
    me, client = api_user()
    group = group_conversation(me, UserFactory())
    direct = direct_conversation(me, UserFactory())
    strangers = group_conversation(UserFactory(), UserFactory())

    still_in = client.delete(f"{CONVERSATIONS}/{group.pk}")
    assert (still_in.status_code, still_in.json()["error"]["code"], still_in.json()["error"]["field"]) == (
        409, "conflict", "conversation")
    assert "leave it first" in still_in.json()["error"]["message"]
    assert (client.delete(f"{CONVERSATIONS}/{direct.pk}").status_code,
            client.delete(f"{CONVERSATIONS}/{strangers.pk}").status_code) == (400, 404)
    assert sorted(c["id"] for c in client.get(CONVERSATIONS).json()) == sorted([group.pk, direct.pk])


def test_added_back_the_group_is_listed_once_as_a_member_with_history_from_the_return(left_group):
    alice, bob, bob_client, group, _ = left_group

    [back] = conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[bob.pk])

    [listed] = bob_client.get(CONVERSATIONS).json()
    assert (listed["id"], listed["left"], listed["role"]) == (group.pk, False, "member")
    assert "Bob" in [m["user"]["display_name"] for m in listed["members"]]
    assert seqs(messages(bob_client, group.pk)) == [back.seq]
    assert not Departure.objects.filter(user=bob).exists()


def test_photos_in_a_left_group_stay_viewable_up_to_the_notice(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    group = group_conversation(alice, bob)

    def photo(color) -> int:
        media = alice_client.post("/api/v1/media", {"file": samples.uploaded(samples.image_bytes(color=color))},
                                  format="multipart").json()
        sent = alice_client.post(f"{CONVERSATIONS}/{group.pk}/messages", {"client_id": str(color), "media_id": media["id"]})
        assert sent.status_code == 201
        return media["id"]

    before = photo((10, 200, 10))
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=bob.pk)
    after = photo((10, 10, 200))

    assert bob_client.get(f"/api/v1/media/{before}").status_code == 200
    assert bob_client.get(f"/api/v1/media/{before}/thumbnail").status_code == 200
    assert bob_client.get(f"/api/v1/media/{after}").status_code == 404
    bob_client.delete(f"{CONVERSATIONS}/{group.pk}")
    assert bob_client.get(f"/api/v1/media/{before}").status_code == 404
