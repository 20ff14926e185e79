"""broker.services.conversations: direct chats, groups, and who may change their members."""

import pytest

from broker.errors import Forbidden, InvalidInput, NotFound
from broker.services import conversations
from storage.models import Conversation, Membership, Message
from tests.factories import UserFactory, direct_conversation, group_conversation, membership, saved_contacts, sent_message

pytestmark = pytest.mark.django_db


def system_events(conversation) -> list[dict]:
    notices = Message.objects.filter(conversation=conversation, kind=Message.Kind.SYSTEM).order_by("seq")
    return list(notices.values_list("event", flat=True))


def roles(conversation) -> dict[int, str]:
    return dict(Membership.objects.filter(conversation=conversation).values_list("user_id", "role"))


def test_a_direct_chat_is_made_once_whoever_asks():
    alice, bob = UserFactory(), UserFactory()

    first, created = conversations.get_or_create_direct(user=alice, phone_number=bob.phone_number)
    again, created_again = conversations.get_or_create_direct(user=bob, user_id=alice.pk)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and first.kind == Conversation.Kind.DIRECT
    assert set(roles(first)) == {alice.pk, bob.pk}
    assert Message.objects.filter(conversation=first).count() == 0  # a direct chat starts silent


def test_a_direct_chat_needs_another_existing_person():
    alice = UserFactory()

    with pytest.raises(InvalidInput):
        conversations.get_or_create_direct(user=alice, user_id=alice.pk)
    with pytest.raises(NotFound):
        conversations.get_or_create_direct(user=alice, user_id=alice.pk + 1000)
    with pytest.raises(NotFound):
        conversations.get_or_create_direct(user=alice, phone_number="+12125550199")


def test_a_new_group_has_its_creator_as_admin_and_a_creation_notice():
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    saved_contacts(alice, bob, carol)

    group = conversations.create_group(creator=alice, title="  Climbing  ", member_ids=[bob.pk, carol.pk, bob.pk, alice.pk])

    assert (group.kind, group.title, group.last_seq) == (Conversation.Kind.GROUP, "Climbing", 1)
    assert roles(group) == {alice.pk: "admin", bob.pk: "member", carol.pk: "member"}
    assert system_events(group) == [
        {"action": "group_created", "by": alice.pk, "title": "Climbing", "members": [bob.pk, carol.pk]}
    ]


@pytest.mark.parametrize(
    ("title", "member_ids", "error", "field"),
    [
        ("", [], InvalidInput, "title"),
        ("x" * 101, [], InvalidInput, "title"),
        (None, [], InvalidInput, "title"),
        ("Team", "not a list", InvalidInput, "member_ids"),
        ("Team", ["abc"], InvalidInput, "member_ids"),
        ("Team", [10**9], NotFound, "member_ids"),
    ],
)
def test_a_group_needs_a_title_and_real_members(title, member_ids, error, field):
    alice = UserFactory()

    with pytest.raises(error) as refused:
        conversations.create_group(creator=alice, title=title, member_ids=member_ids)

    assert refused.value.field == field
    assert not Conversation.objects.exists()


def test_groups_have_a_size_limit(settings):
    settings.MESSENGER = {**settings.MESSENGER, "MAX_GROUP_MEMBERS": 3}
    alice, *others = UserFactory.create_batch(4)
    saved_contacts(alice, *others)

    with pytest.raises(InvalidInput):
        conversations.create_group(creator=alice, title="Too many", member_ids=[u.pk for u in others])
    group = conversations.create_group(creator=alice, title="Just right", member_ids=[u.pk for u in others[:2]])
    with pytest.raises(InvalidInput):
        conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[others[2].pk])


def test_admins_add_members_who_see_history_from_their_arrival():
    alice, bob, carol, dave = UserFactory.create_batch(4)
    group = group_conversation(alice, bob)
    sent_message(bob, group)
    saved_contacts(alice, carol, dave)

    notices = conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[bob.pk, carol.pk, dave.pk])

    assert [n.event for n in notices] == [
        {"action": "member_added", "by": alice.pk, "user": carol.pk},
        {"action": "member_added", "by": alice.pk, "user": dave.pk},
    ]
    carol_member = membership(carol, group)
    assert carol_member.joined_after_seq == carol_member.delivered_seq == carol_member.read_seq == notices[0].seq - 1
    assert roles(group)[carol.pk] == "member"


def test_only_admins_add_members():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob)

    with pytest.raises(Forbidden):
        conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[carol.pk])
    with pytest.raises(NotFound):
        conversations.add_members(actor=carol, conversation_id=group.pk, user_ids=[carol.pk])

    assert set(roles(group)) == {alice.pk, bob.pk}


def test_members_of_a_direct_chat_cannot_be_changed():
    alice, bob, carol = UserFactory.create_batch(3)
    conversation = direct_conversation(alice, bob)

    with pytest.raises(InvalidInput):
        conversations.add_members(actor=alice, conversation_id=conversation.pk, user_ids=[carol.pk])
    with pytest.raises(InvalidInput):
        conversations.remove_member(actor=alice, conversation_id=conversation.pk, user_id=bob.pk)


def test_admins_remove_members_with_a_notice_written_before_they_go():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)

    notice = conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)

    assert notice.event == {"action": "member_removed", "by": alice.pk, "user": carol.pk}
    assert notice.seq == 2
    assert set(roles(group)) == {alice.pk, bob.pk}


def test_members_may_leave_but_not_remove_others():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)

    with pytest.raises(Forbidden):
        conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=carol.pk)
    notice = conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    assert notice.event == {"action": "member_left", "by": bob.pk, "user": bob.pk}
    assert set(roles(group)) == {alice.pk, carol.pk}


def test_removing_someone_not_in_the_group_is_not_found():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob)

    with pytest.raises(NotFound):
        conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)

    assert Conversation.objects.get(pk=group.pk).last_seq == 1  # no notice was written


def test_when_the_last_admin_leaves_the_longest_member_becomes_admin():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)

    left = conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=alice.pk)

    assert roles(group) == {bob.pk: "admin", carol.pk: "member"}
    told = Message.objects.get(conversation=group, seq=left.seq + 1)  # everyone learns who leads now
    assert (told.event, told.text) == ({"action": "admin_added", "by": None, "user": bob.pk},
                                       f"{bob.display_name} is now an admin")


def test_the_author_of_a_membership_change_does_not_see_its_notice_as_unread():
    from storage.selectors import conversation_summaries

    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    saved_contacts(alice, bob, carol)
    group = conversations.create_group(creator=alice, title="Trip", member_ids=[bob.pk])
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])

    unread = {u.pk: conversation_summaries(user=u)[0].unread_count for u in (alice, bob, carol)}
    assert unread == {alice.pk: 0, bob.pk: 2, carol.pk: 1}


# --- who a group may take: people its admin knows ----------------------------------------------

def known_in_every_way(alice):
    """One person Alice knows in each way a group takes: (how, user)."""
    contact, chat_peer, fellow, other_admin = UserFactory.create_batch(4)
    saved_contacts(alice, contact)
    direct_conversation(alice, chat_peer)
    group_conversation(other_admin, alice, fellow)  # someone else's group: Alice is in it, not its admin
    return [("contact", contact), ("direct chat", chat_peer), ("group", fellow)]


def test_an_apps_account_is_in_no_group_however_well_known():
    """An app hears only its direct chats: in a group it would acknowledge nothing, and no message
    there would ever show delivered."""
    from tests.developer_api.helpers import make_app

    alice, bob = UserFactory.create_batch(2)
    bot = make_app().bot
    direct_conversation(alice, bot)  # known to Alice: she chats with it
    group = group_conversation(alice, bob)

    with pytest.raises(InvalidInput) as creating:
        conversations.create_group(creator=alice, title="With a bot", member_ids=[bob.pk, bot.pk])
    with pytest.raises(InvalidInput) as adding:
        conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[bot.pk])

    assert (creating.value.field, adding.value.field) == ("member_ids", "user_ids")
    assert not Conversation.objects.filter(title="With a bot").exists()
    assert bot.pk not in roles(group)


def test_a_group_is_made_of_people_its_creator_knows_and_of_nobody_else():
    alice, stranger = UserFactory(), UserFactory()
    people = [user for _, user in known_in_every_way(alice)]

    with pytest.raises(NotFound):
        conversations.create_group(creator=alice, title="Mixed", member_ids=[u.pk for u in people] + [stranger.pk])
    group = conversations.create_group(creator=alice, title="Mixed", member_ids=[u.pk for u in people])

    assert roles(group) == {alice.pk: "admin", **{u.pk: "member" for u in people}}


def test_an_admin_adds_people_they_know_in_any_way_and_nobody_else():
    alice, stranger = UserFactory(), UserFactory()
    group = conversations.create_group(creator=alice, title="Growing", member_ids=[])

    for how, person in known_in_every_way(alice):
        [notice] = conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[person.pk])
        assert notice.event == {"action": "member_added", "by": alice.pk, "user": person.pk}, how
    with pytest.raises(NotFound):
        conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[stranger.pk])
    assert stranger.pk not in roles(group)


def test_a_stranger_in_a_new_group_is_not_found_as_an_id_nobody_has_and_no_group_is_made():
    alice, contact, stranger = UserFactory.create_batch(3)
    saved_contacts(alice, contact)
    group_conversation(stranger, UserFactory())  # in conversations of their own, none of Alice's

    with pytest.raises(NotFound) as refused:
        conversations.create_group(creator=alice, title="Trap", member_ids=[contact.pk, stranger.pk])
    with pytest.raises(NotFound) as nobody:
        conversations.create_group(creator=alice, title="Trap", member_ids=[contact.pk, 10**9])

    assert refused.value.field == nobody.value.field == "member_ids"
    assert str(refused.value).replace(str(stranger.pk), "N") == str(nobody.value).replace(str(10**9), "N")
    assert stranger.phone_number not in str(refused.value)
    assert not Conversation.objects.filter(created_by=alice).exists()


def test_a_stranger_cannot_be_added_to_a_group_and_nothing_is_added():
    alice, bob, carol, stranger = UserFactory.create_batch(4)
    group = group_conversation(alice, bob)
    saved_contacts(alice, carol)

    with pytest.raises(NotFound) as refused:
        conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk, stranger.pk])

    assert refused.value.field == "user_ids"
    assert stranger.phone_number not in str(refused.value)
    assert set(roles(group)) == {alice.pk, bob.pk}
    assert Conversation.objects.get(pk=group.pk).last_seq == 1  # no notice was written


def test_someone_known_only_through_a_group_one_has_left_is_a_stranger_again():
    alice, bob, carol = UserFactory.create_batch(3)
    shared = group_conversation(bob, alice, carol)
    mine = conversations.create_group(creator=alice, title="Mine", member_ids=[carol.pk])  # known through Bob's group
    conversations.remove_member(actor=alice, conversation_id=mine.pk, user_id=carol.pk)
    conversations.remove_member(actor=alice, conversation_id=shared.pk, user_id=alice.pk)  # Alice leaves Bob's

    with pytest.raises(NotFound) as refused:
        conversations.add_members(actor=alice, conversation_id=mine.pk, user_ids=[carol.pk])

    assert refused.value.field == "user_ids"
    assert set(roles(mine)) == {alice.pk}


# --- admins ------------------------------------------------------------------------------------------
def events_of(group) -> list[dict]:
    return [m.event for m in Message.objects.filter(conversation=group, kind="system").order_by("seq")][1:]


def test_an_admin_makes_a_member_admin_and_the_new_admin_may_dismiss_the_first():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)

    made = conversations.set_role(actor=alice, conversation_id=group.pk, user_id=bob.pk, role="admin")
    again = conversations.set_role(actor=alice, conversation_id=group.pk, user_id=bob.pk, role="admin")
    dismissed = conversations.set_role(actor=bob, conversation_id=group.pk, user_id=alice.pk, role="member")

    assert roles(group) == {alice.pk: "member", bob.pk: "admin", carol.pk: "member"}
    assert again is None  # the role it had: nothing written
    assert events_of(group) == [{"action": "admin_added", "by": alice.pk, "user": bob.pk},
                                {"action": "admin_removed", "by": bob.pk, "user": alice.pk}]
    assert (made.text, dismissed.text) == (f"{alice.display_name} made {bob.display_name} an admin",
                                           f"{bob.display_name} dismissed {alice.display_name} as admin")
    # Alice, a member now, makes nobody admin.
    with pytest.raises(Forbidden):
        conversations.set_role(actor=alice, conversation_id=group.pk, user_id=carol.pk, role="admin")


def test_the_last_admin_is_not_dismissed_and_bad_requests_name_their_field():
    alice, bob, outsider = UserFactory.create_batch(3)
    group = group_conversation(alice, bob)

    with pytest.raises(InvalidInput) as last:
        conversations.set_role(actor=alice, conversation_id=group.pk, user_id=alice.pk, role="member")
    with pytest.raises(InvalidInput) as bad_role:
        conversations.set_role(actor=alice, conversation_id=group.pk, user_id=bob.pk, role="owner")
    with pytest.raises(NotFound) as not_in_it:
        conversations.set_role(actor=alice, conversation_id=group.pk, user_id=outsider.pk, role="admin")
    with pytest.raises(Forbidden) as member:
        conversations.set_role(actor=bob, conversation_id=group.pk, user_id=bob.pk, role="admin")

    assert (last.value.field, bad_role.value.field, not_in_it.value.field, member.value.field) == (
        "role", "role", "user_id", "role")
    assert roles(group) == {alice.pk: "admin", bob.pk: "member"} and events_of(group) == []


def test_an_admin_steps_down_once_another_is_there():
    alice, bob = UserFactory.create_batch(2)
    group = group_conversation(alice, bob)
    conversations.set_role(actor=alice, conversation_id=group.pk, user_id=bob.pk, role="admin")

    notice = conversations.set_role(actor=alice, conversation_id=group.pk, user_id=alice.pk, role="member")

    assert notice.text == f"{alice.display_name} is no longer an admin"
    assert roles(group) == {alice.pk: "member", bob.pk: "admin"}
