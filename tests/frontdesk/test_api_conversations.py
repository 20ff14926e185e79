"""Starting direct chats and groups, listing them, and changing who is in a group."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from broker import events
from broker.services import people as people_service
from broker.services import presence
from django.test.utils import CaptureQueriesContext

from storage.models import Contact, Conversation, Membership, Message, User
from tests.factories import UserFactory, api_user, direct_conversation, group_conversation, saved_contacts, sent_message

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/v1/conversations"


def detail(conversation_id: int) -> str:
    return f"{CONVERSATIONS}/{conversation_id}"


def members_url(conversation_id: int) -> str:
    return f"{CONVERSATIONS}/{conversation_id}/members"


def history(client, conversation_id: int, **query) -> list[dict]:
    response = client.get(f"{CONVERSATIONS}/{conversation_id}/messages", query)
    assert response.status_code == 200
    return response.json()["results"]


def system_events(client, conversation_id: int) -> list[dict]:
    return [m["event"] for m in history(client, conversation_id) if m["kind"] == "system"]


# --- Direct conversations ---------------------------------------------------------------------
def test_starting_a_direct_conversation_by_phone_number():
    alice, client = api_user()
    bob = UserFactory(phone_number="+12125550142", display_name="Bob")

    response = client.post(CONVERSATIONS, {"kind": "direct", "phone_number": "+1 212 555 0142"})

    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "direct"
    assert body["title"] == "Bob"  # a direct chat is called after the other person
    assert sorted(m["user"]["id"] for m in body["members"]) == sorted([alice.pk, bob.pk])
    assert body["last_message"] is None and body["last_seq"] == 0 and body["unread_count"] == 0


def test_starting_a_direct_conversation_with_a_contact_by_user_id():
    alice, client = api_user()
    bob = UserFactory()
    Contact.objects.create(owner=alice, contact=bob)

    response = client.post(CONVERSATIONS, {"kind": "direct", "user_id": bob.pk})

    assert response.status_code == 201
    assert Conversation.objects.get().kind == "direct"


def test_starting_a_direct_conversation_with_someone_from_a_group_by_user_id():
    alice, client = api_user()
    bob = UserFactory()
    group_conversation(bob, alice)

    response = client.post(CONVERSATIONS, {"kind": "direct", "user_id": bob.pk})

    assert response.status_code == 201
    assert sorted(m["user"]["id"] for m in response.json()["members"]) == sorted([alice.pk, bob.pk])


def test_a_strangers_user_id_starts_nothing_and_shows_nothing_of_them():
    _, client = api_user()
    stranger = UserFactory()

    response = client.post(CONVERSATIONS, {"kind": "direct", "user_id": stranger.pk})
    nobody = client.post(CONVERSATIONS, {"kind": "direct", "user_id": stranger.pk + 1000})

    assert response.status_code == nobody.status_code == 404
    assert response.json()["error"]["field"] == "user_id"
    assert stranger.phone_number not in response.content.decode()
    # A stranger's id and an id nobody has are answered alike, so ids say nothing either.
    assert response.json()["error"]["message"].replace(str(stranger.pk), "N") == \
        nobody.json()["error"]["message"].replace(str(stranger.pk + 1000), "N")
    assert Conversation.objects.count() == 0


def test_asking_for_the_same_direct_conversation_again_from_either_side_returns_it_with_200():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    first = alice_client.post(CONVERSATIONS, {"kind": "direct", "phone_number": bob.phone_number})

    again = alice_client.post(CONVERSATIONS, {"kind": "direct", "user_id": bob.pk})
    from_bob = bob_client.post(CONVERSATIONS, {"kind": "direct", "user_id": alice.pk})

    assert first.status_code == 201
    assert again.status_code == from_bob.status_code == 200
    assert first.json()["id"] == again.json()["id"] == from_bob.json()["id"]
    assert from_bob.json()["title"] == alice.display_name
    assert Conversation.objects.count() == 1
    assert Membership.objects.count() == 2


def test_a_direct_conversation_with_yourself_is_refused():
    me, client = api_user()

    response = client.post(CONVERSATIONS, {"kind": "direct", "user_id": me.pk})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "user_id"
    assert Conversation.objects.count() == 0


def test_a_direct_conversation_with_a_number_nobody_uses_is_404_naming_the_field():
    _, client = api_user()

    response = client.post(CONVERSATIONS, {"kind": "direct", "phone_number": "+12125550199"})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "phone_number"
    assert Conversation.objects.count() == 0


def test_a_direct_conversation_needs_exactly_one_of_phone_number_or_user_id():
    _, client = api_user()
    bob = UserFactory()

    neither = client.post(CONVERSATIONS, {"kind": "direct"})
    both = client.post(CONVERSATIONS, {"kind": "direct", "user_id": bob.pk, "phone_number": bob.phone_number})

    assert neither.status_code == both.status_code == 400
    assert Conversation.objects.count() == 0


def test_an_unknown_conversation_kind_is_refused_naming_the_field():
    _, client = api_user()

    response = client.post(CONVERSATIONS, {"kind": "channel", "title": "News"})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "kind"
    assert Conversation.objects.count() == 0


# --- Groups -----------------------------------------------------------------------------------
def test_creating_a_group_makes_the_creator_admin_and_announces_it_in_history():
    creator, client = api_user()
    bob, carol = UserFactory(), UserFactory()
    for person in (bob, carol):
        assert client.post("/api/v1/contacts", {"phone_number": person.phone_number}).status_code == 201

    response = client.post(CONVERSATIONS, {"kind": "group", "title": "Book club", "member_ids": [bob.pk, carol.pk]})

    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "group" and body["title"] == "Book club" and body["role"] == "admin"
    roles = {m["user"]["id"]: m["role"] for m in body["members"]}
    assert roles == {creator.pk: "admin", bob.pk: "member", carol.pk: "member"}
    [created] = history(client, body["id"])
    assert created["kind"] == "system" and created["sender"] is None and created["seq"] == 1
    assert created["event"] == {
        "action": "group_created", "by": creator.pk, "title": "Book club", "members": [bob.pk, carol.pk]
    }


def test_a_group_needs_a_title():
    _, client = api_user()

    response = client.post(CONVERSATIONS, {"kind": "group", "member_ids": [UserFactory().pk]})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "title"
    assert Conversation.objects.count() == 0


def test_a_group_cannot_start_with_more_members_than_the_limit(settings):
    me, client = api_user()
    settings.MESSENGER = {**settings.MESSENGER, "MAX_GROUP_MEMBERS": 3}
    others = UserFactory.create_batch(3)
    saved_contacts(me, *others)

    response = client.post(CONVERSATIONS, {"kind": "group", "title": "Crowd", "member_ids": [u.pk for u in others]})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "member_ids"
    assert Conversation.objects.count() == 0


def test_a_group_with_a_member_who_does_not_exist_is_refused_and_not_created():
    me, client = api_user()
    friend = UserFactory()
    saved_contacts(me, friend)  # the one who exists is known: the refusal is for the id nobody has
    member_ids = [friend.pk, 999999]

    response = client.post(CONVERSATIONS, {"kind": "group", "title": "Ghosts", "member_ids": member_ids})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "member_ids"
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0


def known_people(me, client) -> list[User]:
    """One person `me` knows in each way a group takes: a contact saved by phone number, the peer
    of a direct chat, someone in another group with them."""
    contact, chat_peer, fellow = UserFactory(), UserFactory(), UserFactory()
    assert client.post("/api/v1/contacts", {"phone_number": contact.phone_number}).status_code == 201
    assert client.post(CONVERSATIONS, {"kind": "direct", "phone_number": chat_peer.phone_number}).status_code == 201
    group_conversation(UserFactory(), me, fellow)
    return [contact, chat_peer, fellow]


def test_an_apps_account_is_400_on_member_ids_and_user_ids_and_nothing_is_made():
    from tests.developer_api.helpers import make_app

    me, client = api_user()
    friend, bot = UserFactory(), make_app().bot
    saved_contacts(me, friend)
    assert client.post("/api/v1/contacts", {"user_id": bot.pk}).status_code == 201  # an app one knows
    group = group_conversation(me, friend)

    created = client.post(CONVERSATIONS, {"kind": "group", "title": "Shop", "member_ids": [friend.pk, bot.pk]})
    added = client.post(members_url(group.pk), {"user_ids": [bot.pk]})

    assert (created.status_code, created.json()["error"]["field"]) == (400, "member_ids")
    assert (added.status_code, added.json()["error"]["field"]) == (400, "user_ids")
    assert "direct chats only" in added.json()["error"]["message"]
    assert not Conversation.objects.filter(title="Shop").exists()
    assert not group.memberships.filter(user=bot).exists()


def refusal_without_the_id(response, user_id: int) -> dict:
    error = response.json()["error"]
    return {**error, "message": error["message"].replace(str(user_id), "N")}


def test_a_group_takes_contacts_chat_peers_and_fellow_members_not_strangers():
    me, client = api_user()
    people = known_people(me, client)
    with_a_stranger = [u.pk for u in people] + [UserFactory().pk]

    refused = client.post(CONVERSATIONS, {"kind": "group", "title": "Known", "member_ids": with_a_stranger})
    response = client.post(CONVERSATIONS, {"kind": "group", "title": "Known", "member_ids": [u.pk for u in people]})

    assert refused.status_code == 404
    assert response.status_code == 201
    assert {m["user"]["id"] for m in response.json()["members"]} == {me.pk, *(u.pk for u in people)}


def test_a_stranger_in_a_new_group_is_404_on_member_ids_as_an_id_nobody_has_and_no_number_shows():
    me, client = api_user()
    friend, stranger = UserFactory(), UserFactory()
    saved_contacts(me, friend)
    direct_conversation(stranger, UserFactory())  # in conversations of their own, none of mine

    refused = client.post(CONVERSATIONS, {"kind": "group", "title": "Trap", "member_ids": [friend.pk, stranger.pk]})
    nobody = client.post(CONVERSATIONS, {"kind": "group", "title": "Trap", "member_ids": [friend.pk, 999999]})

    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["field"]) == (
        404, "not_found", "member_ids")
    assert refusal_without_the_id(refused, stranger.pk) == refusal_without_the_id(nobody, 999999)
    assert stranger.phone_number.encode() not in refused.content
    assert stranger.display_name.encode() not in refused.content
    assert not Conversation.objects.filter(kind=Conversation.Kind.GROUP).exists()
    assert Message.objects.count() == 0


# --- Listing and reading conversations ----------------------------------------------------------
def test_the_conversation_list_puts_the_latest_activity_first():
    me, client = api_user()
    old, middle, new = (direct_conversation(me, UserFactory()) for _ in range(3))
    sent_message(me, old, "wakes the oldest conversation up")

    response = client.get(CONVERSATIONS)

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [old.pk, new.pk, middle.pk]


def test_the_conversation_list_shows_the_last_message_and_how_many_are_unread():
    me, client = api_user()
    friend = UserFactory()
    conversation = direct_conversation(me, friend)
    for text in ("one", "two", "three"):
        sent_message(friend, conversation, text)

    [summary] = client.get(CONVERSATIONS).json()

    assert summary["last_message"]["text"] == "three"
    assert summary["last_message"]["sender"] == friend.pk
    assert summary["unread_count"] == 3


def test_the_conversation_list_shows_only_my_conversations():
    me, client = api_user()
    mine = direct_conversation(me, UserFactory())
    direct_conversation(UserFactory(), UserFactory())
    group_conversation(UserFactory(), UserFactory())

    assert [c["id"] for c in client.get(CONVERSATIONS).json()] == [mine.pk]


def test_listing_conversations_takes_the_same_number_of_queries_however_many_there_are():
    me, client = api_user()

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(CONVERSATIONS).status_code == 200
        return len(queries)

    group = group_conversation(me, UserFactory())
    sent_message(me, group)
    client.get(CONVERSATIONS)  # the token's first use records last_used_at: one write, not counted
    with_one = queries_for_list()
    for _ in range(5):
        sent_message(me, group_conversation(me, UserFactory(), UserFactory()))
        direct_conversation(me, UserFactory())

    assert len(client.get(CONVERSATIONS).json()) == 11
    assert queries_for_list() == with_one


def test_an_apps_account_is_marked_is_business_wherever_it_appears():
    """The browser UI (and any client) shows a "business" badge from this field."""
    from developer_api.services import apps

    alice, client = api_user()
    app = apps.create_app(owner=UserFactory(), name="Corner Shop")
    bob = UserFactory()
    direct_conversation(alice, bob)
    started = client.post(CONVERSATIONS, {"kind": "direct", "user_id": app.bot_id}).json()
    client.post("/api/v1/contacts", {"user_id": app.bot_id})

    listed = {c["title"]: c for c in client.get(CONVERSATIONS).json()}
    fetched = client.get(detail(started["id"])).json()
    [contact] = client.get("/api/v1/contacts").json()

    def flags(conversation):
        return {m["user"]["id"]: m["user"]["is_business"] for m in conversation["members"]}

    assert flags(started) == flags(listed["Corner Shop"]) == flags(fetched) == {alice.pk: False, app.bot_id: True}
    assert flags(listed[bob.display_name]) == {alice.pk: False, bob.pk: False}
    assert contact["user"]["id"] == app.bot_id and contact["user"]["is_business"] is True
    assert client.get("/api/v1/me").json()["is_business"] is False


def test_a_conversation_can_be_fetched_by_id():
    me, client = api_user()
    group = group_conversation(me, UserFactory(), title="Family")

    response = client.get(detail(group.pk))

    assert response.status_code == 200
    assert response.json()["id"] == group.pk
    assert response.json()["title"] == "Family"
    assert response.json()["last_message"]["event"]["action"] == "group_created"


def test_outsiders_get_404_for_a_conversation_and_never_its_data():
    alice, alice_client = api_user()
    group = group_conversation(alice, UserFactory(), title="Secret plans")
    sent_message(alice, group, "the secret")
    _, outsider = api_user()

    answers = [
        outsider.get(detail(group.pk)),
        outsider.get(f"{detail(group.pk)}/messages"),
        outsider.post(f"{detail(group.pk)}/messages", {"client_id": "x1", "text": "let me in"}),
        outsider.post(f"{detail(group.pk)}/read", {"seq": 1}),
        outsider.post(f"{detail(group.pk)}/delivered", {"seq": 1}),
        outsider.post(members_url(group.pk), {"user_ids": [UserFactory().pk]}),
        outsider.delete(members_url(group.pk), {"user_id": alice.pk}),
    ]

    for response in answers:
        assert response.status_code == 404
        assert b"Secret plans" not in response.content and b"the secret" not in response.content
    # ... and exactly what a conversation that does not exist at all answers.
    missing = outsider.get(detail(group.pk + 1000))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == answers[0].json()["error"]["code"]
    assert Message.objects.count() == 2 and Membership.objects.filter(conversation=group).count() == 2


def test_members_presence_is_shown_only_where_the_websocket_would_show_it():
    """Online and last seen, as presence events: for yourself and the people you share a direct
    chat with, no block either way; not for people you share only a group with."""
    alice, client = api_user()
    bob, carol, dave = UserFactory(), UserFactory(), UserFactory()
    direct_conversation(alice, bob)
    direct_conversation(alice, dave)
    group_conversation(alice, bob, carol, dave)
    people_service.block_user(blocker=dave, user_id=alice.pk)
    seen = timezone.now() - timedelta(minutes=5)
    User.objects.filter(pk__in=[carol.pk, dave.pk]).update(last_seen=seen)
    for user in (alice, carol, dave):
        presence.connection_opened(user_id=user.pk)

    conversations = client.get(CONVERSATIONS).json()

    shown = {(c["kind"], m["user"]["id"]): (m["online"], m["last_seen"]) for c in conversations for m in c["members"]}
    assert shown[("group", alice.pk)] == (True, None)
    assert shown[("group", bob.pk)] == shown[("direct", bob.pk)] == (False, None)  # offline, never seen
    assert shown[("group", carol.pk)] == (None, None)  # only a group in common
    assert shown[("group", dave.pk)] == shown[("direct", dave.pk)] == (None, None)  # Dave blocked Alice
    people_service.unblock_user(blocker=dave, user_id=alice.pk)
    dave_now = {m["user"]["id"]: m for c in client.get(CONVERSATIONS).json() for m in c["members"]}[dave.pk]
    assert (dave_now["online"], dave_now["last_seen"]) == (True, events.timestamp(seen))


# --- Group membership -------------------------------------------------------------------------
def test_an_admin_adds_members_and_history_records_it():
    admin, client = api_user()
    group = group_conversation(admin, UserFactory())
    newcomer = UserFactory(display_name="Dana")
    assert client.post("/api/v1/contacts", {"phone_number": newcomer.phone_number}).status_code == 201

    response = client.post(members_url(group.pk), {"user_ids": [newcomer.pk]})

    assert response.status_code == 200
    assert newcomer.pk in {m["user"]["id"] for m in response.json()["members"]}
    added = history(client, group.pk)[-1]
    assert added["kind"] == "system" and added["sender"] is None
    assert added["event"] == {"action": "member_added", "by": admin.pk, "user": newcomer.pk}
    assert "Dana" in added["text"]


def test_an_admin_adds_contacts_chat_peers_and_fellow_members_not_strangers():
    admin, client = api_user()
    group = group_conversation(admin, UserFactory())
    people = known_people(admin, client)

    refused = client.post(members_url(group.pk), {"user_ids": [u.pk for u in people] + [UserFactory().pk]})
    response = client.post(members_url(group.pk), {"user_ids": [u.pk for u in people]})

    assert refused.status_code == 404
    assert response.status_code == 200
    assert {u.pk for u in people} <= {m["user"]["id"] for m in response.json()["members"]}
    assert [e["user"] for e in system_events(client, group.pk) if e["action"] == "member_added"] == [u.pk for u in people]


def test_adding_a_stranger_is_404_on_user_ids_as_an_id_nobody_has_and_adds_nobody():
    admin, client = api_user()
    group = group_conversation(admin, UserFactory())
    friend, stranger = UserFactory(), UserFactory()
    saved_contacts(admin, friend)
    messages_before = Message.objects.count()

    refused = client.post(members_url(group.pk), {"user_ids": [friend.pk, stranger.pk]})
    nobody = client.post(members_url(group.pk), {"user_ids": [friend.pk, 999999]})

    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["field"]) == (
        404, "not_found", "user_ids")
    assert refusal_without_the_id(refused, stranger.pk) == refusal_without_the_id(nobody, 999999)
    assert stranger.phone_number.encode() not in refused.content
    assert stranger.display_name.encode() not in refused.content
    assert Membership.objects.filter(conversation=group).count() == 2
    assert Message.objects.count() == messages_before


def test_a_member_who_is_not_admin_cannot_add_members():
    admin = UserFactory()
    member, member_client = api_user()
    group = group_conversation(admin, member)
    messages_before = Message.objects.count()

    response = member_client.post(members_url(group.pk), {"user_ids": [UserFactory().pk]})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert Membership.objects.filter(conversation=group).count() == 2
    assert Message.objects.count() == messages_before


def test_a_member_added_later_does_not_see_earlier_history():
    admin, admin_client = api_user()
    group = group_conversation(admin, UserFactory())
    sent_message(admin, group, "before you came")
    newcomer, newcomer_client = api_user()
    saved_contacts(admin, newcomer)
    assert admin_client.post(members_url(group.pk), {"user_ids": [newcomer.pk]}).status_code == 200
    sent_message(admin, group, "welcome")

    seen = history(newcomer_client, group.pk)
    caught_up = history(newcomer_client, group.pk, after_seq=0)

    assert [m["text"] for m in seen if m["kind"] == "text"] == ["welcome"]
    assert [m["event"]["action"] for m in seen if m["kind"] == "system"] == ["member_added"]
    assert caught_up == seen
    [summary] = newcomer_client.get(CONVERSATIONS).json()
    assert summary["last_message"]["text"] == "welcome"
    assert summary["unread_count"] == 2  # their own arrival and the welcome


def test_adding_someone_who_is_already_in_the_group_changes_nothing():
    admin, client = api_user()
    member = UserFactory()
    group = group_conversation(admin, member)

    response = client.post(members_url(group.pk), {"user_ids": [member.pk]})

    assert response.status_code == 200
    assert Membership.objects.filter(conversation=group).count() == 2
    assert [e["action"] for e in system_events(client, group.pk)] == ["group_created"]


def test_a_full_group_takes_nobody_more(settings):
    admin, client = api_user()
    group = group_conversation(admin, UserFactory(), UserFactory())
    settings.MESSENGER = {**settings.MESSENGER, "MAX_GROUP_MEMBERS": 3}
    one_more = UserFactory()
    saved_contacts(admin, one_more)

    response = client.post(members_url(group.pk), {"user_ids": [one_more.pk]})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "user_ids"
    assert Membership.objects.filter(conversation=group).count() == 3


def test_members_cannot_be_added_to_a_direct_conversation():
    me, client = api_user()
    conversation = direct_conversation(me, UserFactory())

    response = client.post(members_url(conversation.pk), {"user_ids": [UserFactory().pk]})

    assert response.status_code == 400
    assert Membership.objects.filter(conversation=conversation).count() == 2


def test_an_admin_removes_a_member_who_then_sees_the_group_only_as_left():
    admin, admin_client = api_user()
    member, member_client = api_user()
    group = group_conversation(admin, member, UserFactory())

    response = admin_client.delete(members_url(group.pk), {"user_id": member.pk})

    assert response.status_code == 204
    assert system_events(admin_client, group.pk)[-1] == {"action": "member_removed", "by": admin.pk, "user": member.pk}
    assert member_client.get(detail(group.pk)).json()["left"] is True
    assert [c["id"] for c in member_client.get(CONVERSATIONS).json()] == [group.pk]
    refused = member_client.post(f"{detail(group.pk)}/messages", {"client_id": "after", "text": "still here?"})
    assert refused.status_code == 403
    assert refused.json()["error"] == {"code": "forbidden", "message": "You are no longer a participant in this group.",
                                       "field": "conversation"}
    assert not Message.objects.filter(sender=member).exists()


def test_an_admin_can_also_remove_a_member_by_path():
    admin, admin_client = api_user()
    member = UserFactory()
    group = group_conversation(admin, member)

    response = admin_client.delete(f"{members_url(group.pk)}/{member.pk}")

    assert response.status_code == 204
    assert not Membership.objects.filter(conversation=group, user=member).exists()
    assert system_events(admin_client, group.pk)[-1]["action"] == "member_removed"


def test_any_member_may_leave_a_group():
    admin, admin_client = api_user()
    member, member_client = api_user(display_name="Eve")
    group = group_conversation(admin, member)

    response = member_client.delete(f"{members_url(group.pk)}/{member.pk}")

    assert response.status_code == 204
    left = history(admin_client, group.pk)[-1]
    assert left["event"] == {"action": "member_left", "by": member.pk, "user": member.pk}
    assert left["text"] == "Eve left"


def test_a_member_who_is_not_admin_cannot_remove_someone_else():
    admin = UserFactory()
    member, member_client = api_user()
    group = group_conversation(admin, member)
    messages_before = Message.objects.count()

    response = member_client.delete(members_url(group.pk), {"user_id": admin.pk})

    assert response.status_code == 403
    assert Membership.objects.filter(conversation=group).count() == 2
    assert Message.objects.count() == messages_before


def test_removing_someone_who_is_not_in_the_group_is_404_naming_the_field():
    admin, client = api_user()
    group = group_conversation(admin, UserFactory())

    response = client.delete(members_url(group.pk), {"user_id": UserFactory().pk})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "user_id"


def test_when_the_last_admin_leaves_the_longest_standing_member_becomes_admin():
    admin, admin_client = api_user()
    first, first_client = api_user()
    group = group_conversation(admin, first)
    later = UserFactory()
    saved_contacts(admin, later)
    assert admin_client.post(members_url(group.pk), {"user_ids": [later.pk]}).status_code == 200

    admin_client.delete(f"{members_url(group.pk)}/{admin.pk}")

    assert first_client.get(detail(group.pk)).json()["role"] == "admin"
    assert system_events(first_client, group.pk)[-1] == {"action": "admin_added", "by": None, "user": first.pk}


def test_an_admin_makes_another_admin_who_then_manages_the_group():
    admin, admin_client = api_user()
    helper, helper_client = api_user()
    group = group_conversation(admin, helper)

    made = admin_client.patch(f"{members_url(group.pk)}/{helper.pk}", {"role": "admin"})
    stepped_down = admin_client.patch(f"{members_url(group.pk)}/{admin.pk}", {"role": "member"})
    removed = helper_client.delete(f"{members_url(group.pk)}/{admin.pk}")

    assert made.status_code == 200
    assert {m["user"]["id"]: m["role"] for m in made.json()["members"]} == {admin.pk: "admin", helper.pk: "admin"}
    assert stepped_down.status_code == 200 and stepped_down.json()["role"] == "member"
    assert removed.status_code == 204  # the new admin's to do now
    assert [e["action"] for e in system_events(helper_client, group.pk)] == [
        "group_created", "admin_added", "admin_removed", "member_removed"]


def test_a_role_change_that_cannot_be_is_a_clear_4xx_naming_the_field():
    admin, admin_client = api_user()
    member, member_client = api_user()
    group = group_conversation(admin, member)

    last_admin = admin_client.patch(f"{members_url(group.pk)}/{admin.pk}", {"role": "member"})
    not_admin = member_client.patch(f"{members_url(group.pk)}/{member.pk}", {"role": "admin"})
    bad_role = admin_client.patch(f"{members_url(group.pk)}/{member.pk}", {"role": "owner"})
    nobody = admin_client.patch(f"{members_url(group.pk)}/{UserFactory().pk}", {"role": "admin"})

    assert [(r.status_code, r.json()["error"]["field"]) for r in (last_admin, not_admin, bad_role, nobody)] == [
        (400, "role"), (403, "role"), (400, "role"), (404, "user_id")]
    assert group.memberships.get(user=member).role == "member"


def test_a_conversation_id_too_large_to_exist_is_refused_not_a_server_error():
    _, client = api_user()
    huge = 10**20  # past every database's integer range

    for response in (client.get(detail(huge)), client.get(f"{detail(huge)}/messages")):
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "conversation"
