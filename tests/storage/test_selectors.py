"""storage.selectors: history pages, conversation summaries and the catch-up backlog."""

import pytest
from django.db import connection

from broker.services import conversations, deletion, editing, moderation, reactions, receipts, send
from storage import selectors
from storage.models import Conversation, Departure, Media
from tests.factories import UserFactory, direct_conversation, group_conversation, membership, saved_contacts, sent_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat():
    """Alice and Bob with five messages, alternating from Alice."""
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    for n in range(1, 6):
        sent_message(alice if n % 2 else bob, conversation, f"m{n}")
    return alice, bob, conversation


def page_seqs(page: tuple[list, bool]) -> tuple[list[int], bool]:
    messages, has_more = page
    return [m.seq for m in messages], has_more


# --- history_page --------------------------------------------------------------------------------

def test_history_pages_backwards_from_the_newest(chat):
    alice, _, conversation = chat
    member = membership(alice, conversation)

    assert page_seqs(selectors.history_page(membership=member, limit=2)) == ([4, 5], True)
    assert page_seqs(selectors.history_page(membership=member, before_seq=4, limit=2)) == ([2, 3], True)
    assert page_seqs(selectors.history_page(membership=member, before_seq=2, limit=2)) == ([1], False)
    assert page_seqs(selectors.history_page(membership=member, limit=5)) == ([1, 2, 3, 4, 5], False)


def test_history_pages_forwards_after_a_seq(chat):
    alice, _, conversation = chat
    member = membership(alice, conversation)

    assert page_seqs(selectors.history_page(membership=member, after_seq=0, limit=2)) == ([1, 2], True)
    assert page_seqs(selectors.history_page(membership=member, after_seq=2, limit=2)) == ([3, 4], True)
    assert page_seqs(selectors.history_page(membership=member, after_seq=4, limit=2)) == ([5], False)
    assert page_seqs(selectors.history_page(membership=member, after_seq=5, limit=2)) == ([], False)


def test_history_between_two_seqs(chat):
    alice, _, conversation = chat
    member = membership(alice, conversation)

    assert page_seqs(selectors.history_page(membership=member, after_seq=1, before_seq=5, limit=10)) == ([2, 3, 4], False)
    assert page_seqs(selectors.history_page(membership=member, after_seq=1, before_seq=5, limit=2)) == ([2, 3], True)


def test_history_of_a_late_member_starts_at_their_arrival():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob)
    sent_message(alice, group, "before Carol")
    saved_contacts(alice, carol)
    [notice] = conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])
    sent_message(bob, group, "after Carol")
    member = membership(carol, group)

    assert [m.text for m in selectors.history_page(membership=member)[0]] == [notice.text, "after Carol"]
    assert page_seqs(selectors.history_page(membership=member, before_seq=notice.seq)) == ([], False)
    assert page_seqs(selectors.history_page(membership=member, after_seq=0)) == ([notice.seq, notice.seq + 1], False)


# --- member_history_page -------------------------------------------------------------------------

def test_a_members_page_comes_with_everyones_watermarks_and_outsiders_get_none(chat):
    alice, bob, conversation = chat
    receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=5)  # read up to his own 4th

    page = selectors.member_history_page(user_id=alice.pk, conversation_id=conversation.pk, limit=2)
    assert ([m.seq for m in page.messages], page.has_more) == ([4, 5], True)
    assert {m.user_id: (m.delivered_seq, m.read_seq) for m in page.members} == {alice.pk: (5, 5), bob.pk: (5, 4)}
    assert selectors.member_history_page(user_id=UserFactory().pk, conversation_id=conversation.pk) is None


def test_a_page_loads_its_media_in_one_query_and_only_when_it_has_some(chat, django_assert_num_queries):
    alice, bob, conversation = chat
    with django_assert_num_queries(3):  # the members, the page, its reactions
        plain = selectors.member_history_page(user_id=bob.pk, conversation_id=conversation.pk)
    assert all(m.media_id is None for m in plain.messages)

    for n in range(2):
        media = Media.objects.create(uploader=alice, kind="image", mime_type="image/png", size=n + 1,
                                     sha256=f"{n}" * 64, file=f"media/{n}.png")
        send.send_message(sender=alice, conversation_id=conversation.pk, client_id=f"photo-{n}", media_id=media.pk)
    with django_assert_num_queries(4):  # and the media of both
        page = selectors.member_history_page(user_id=bob.pk, conversation_id=conversation.pk)
        assert [(m.media.size, m.media.mime_type) for m in page.messages[-2:]] == [(1, "image/png"), (2, "image/png")]


def test_a_page_loads_its_reactions_in_one_query_and_none_without_peoples_messages(chat, django_assert_num_queries):
    alice, bob, conversation = chat
    for n, person in enumerate((alice, bob)):
        reactions.react(user=person, conversation_id=conversation.pk, seq=n + 1, emoji="👍")
    reactions.react(user=alice, conversation_id=conversation.pk, seq=2, emoji="😂")
    with django_assert_num_queries(3):  # the members, the page, the reactions of all its messages
        page = selectors.member_history_page(user_id=bob.pk, conversation_id=conversation.pk)
    assert [m.loaded_reactions for m in page.messages] == [
        ((alice.pk, "👍"),), ((bob.pk, "👍"), (alice.pk, "😂")), (), (), ()]

    with django_assert_num_queries(2):  # past the newest: no messages, no reactions asked for
        assert selectors.member_history_page(user_id=bob.pk, conversation_id=conversation.pk, after_seq=5).messages == []
    notice = deletion.delete_for_everyone(user=alice, conversation_id=conversation.pk, seq=5)
    with django_assert_num_queries(2):  # a removed message and a notice have none to ask for
        page = selectors.member_history_page(user_id=bob.pk, conversation_id=conversation.pk, after_seq=4)
    assert [m.seq for m in page.messages] == [5, notice.seq]


# --- conversation_summaries ---------------------------------------------------------------------

def test_summaries_list_the_most_recently_active_first():
    alice, bob, carol, dave = UserFactory.create_batch(4)
    with_bob = direct_conversation(alice, bob)
    with_carol = direct_conversation(alice, carol)
    group = group_conversation(dave, alice)
    direct_conversation(bob, carol)  # not Alice's
    sent_message(bob, with_bob)
    sent_message(carol, with_carol)
    sent_message(bob, with_bob)

    summaries = selectors.conversation_summaries(user=alice)

    assert [s.conversation.pk for s in summaries] == [with_bob.pk, with_carol.pk, group.pk]
    assert summaries[0].last_message.seq == 2
    assert sorted(m.user_id for m in summaries[0].members) == sorted([alice.pk, bob.pk])


def test_unread_counts_what_others_wrote_after_the_read_watermark(chat):
    alice, bob, conversation = chat  # Bob wrote m2 and m4, which read m1 and m3; m5 is Alice's

    def unread(user):
        [summary] = selectors.conversation_summaries(user=user, conversation_id=conversation.pk)
        return summary.unread_count

    assert (unread(alice), unread(bob)) == (0, 1)
    sent_message(alice, conversation, "m6")
    assert unread(bob) == 2
    receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=6)
    assert unread(bob) == 2  # delivered is not read
    receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=5)
    assert unread(bob) == 1


def test_unread_leaves_out_the_notices_of_edits_and_deletions_but_not_a_take_down():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)
    receipts.mark_read(user=carol, conversation_id=group.pk, seq=group.last_seq)

    def unread(user):
        [summary] = selectors.conversation_summaries(user=user, conversation_id=group.pk)
        return summary.unread_count

    typo = sent_message(alice, group, "helo")
    editing.edit_message(user=alice, conversation_id=group.pk, seq=typo.seq, text="hello")
    editing.edit_message(user=alice, conversation_id=group.pk, seq=typo.seq, text="hello!")
    oops = sent_message(bob, group, "oops")
    deletion.delete_for_everyone(user=bob, conversation_id=group.pk, seq=oops.seq)
    assert unread(carol) == 2  # "hello!" and "This message was deleted": the chat shows no more
    spam = sent_message(bob, group, "cheap watches")
    moderation.take_down(message_id=spam.pk)
    assert unread(carol) == 4  # the removed message and the operator's notice, which the chat shows
    receipts.mark_read(user=carol, conversation_id=group.pk, seq=oops.seq)
    assert unread(carol) == 2

    conversations.remove_member(actor=carol, conversation_id=group.pk, user_id=carol.pk)
    late = sent_message(alice, group, "after carol")
    editing.edit_message(user=alice, conversation_id=group.pk, seq=late.seq, text="after carol left")
    assert unread(carol) == 3  # her going is one more; what came after is not hers, hidden or not


def test_a_summary_of_a_silent_chat_has_no_last_message():
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    [summary] = selectors.conversation_summaries(user=alice)

    assert summary.conversation.pk == conversation.pk
    assert summary.last_message is None and summary.unread_count == 0


def test_each_summary_has_its_own_last_message_with_its_media(django_assert_num_queries):
    alice, *others = UserFactory.create_batch(32)
    chats = [direct_conversation(alice, other) for other in others[:30]]
    for n, chat in enumerate(chats):
        sent_message(others[n], chat, f"first {n}")
        sent_message(alice, chat, f"last {n}")
    photo = Media.objects.create(uploader=alice, kind="image", mime_type="image/png", size=7, sha256="7" * 64,
                                 file="media/7.png")
    send.send_message(sender=alice, conversation_id=chats[0].pk, client_id="photo", media_id=photo.pk)
    group = group_conversation(others[30], others[0])
    sent_message(others[30], group, "before Alice")
    saved_contacts(others[30], alice)
    conversations.add_members(actor=others[30], conversation_id=group.pk, user_ids=[alice.pk])  # a notice

    with django_assert_num_queries(5):  # hers, the groups she left, the members, the last messages, the one photo
        summaries = {s.conversation.pk: s for s in selectors.conversation_summaries(user=alice)}
        assert summaries[chats[0].pk].last_message.media.size == 7
    assert [summaries[c.pk].last_message.text for c in chats[1:]] == [f"last {n}" for n in range(1, 30)]
    assert summaries[group.pk].last_message.kind == "system"  # the notice of her joining, not what came before


def test_summaries_of_someone_in_no_conversation_are_empty():
    assert selectors.conversation_summaries(user=UserFactory()) == []


# --- undelivered_messages ------------------------------------------------------------------------

def texts(messages) -> list[tuple[int, str]]:
    return [(m.conversation_id, m.text) for m in messages]


def test_the_backlog_is_everything_above_the_delivered_watermark_in_order():
    alice, bob, carol = UserFactory.create_batch(3)
    with_alice = direct_conversation(alice, bob)
    with_carol = direct_conversation(carol, bob)
    sent_message(alice, with_alice, "a1")
    sent_message(carol, with_carol, "c1")
    sent_message(alice, with_alice, "a2")
    sent_message(alice, with_alice, "a3")
    receipts.mark_delivered(user=bob, conversation_id=with_alice.pk, seq=1)

    backlog = texts(selectors.undelivered_messages(user=bob))

    assert backlog == [(with_alice.pk, "a2"), (with_alice.pk, "a3"), (with_carol.pk, "c1")]
    assert list(selectors.undelivered_messages(user=alice)) == []  # her own messages count as seen


def test_the_backlog_is_read_in_batches_without_losing_or_repeating_any(chat):
    _, bob, conversation = chat
    for n in range(6, 12):
        sent_message(chat[0], conversation, f"m{n}")
    receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=4)

    backlog = [m.seq for m in selectors.undelivered_messages(user=bob, batch_size=2)]

    assert backlog == list(range(5, 12))


def test_a_late_member_backlog_starts_at_their_arrival():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob)
    sent_message(alice, group, "before Carol")
    saved_contacts(alice, carol)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])

    assert [m.event["action"] for m in selectors.undelivered_messages(user=carol)] == ["member_added"]


def test_a_former_members_backlog_ends_at_the_notice_of_their_going_in_every_batch():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)
    for n in range(2, 6):
        sent_message(alice, group, f"m{n}")
    receipts.mark_delivered(user=carol, conversation_id=group.pk, seq=2)
    conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)
    sent_message(alice, group, "after Carol")

    backlog = list(selectors.undelivered_messages(user=carol, batch_size=2))

    assert [m.seq for m in backlog] == [3, 4, 5, 6]
    assert backlog[-1].event["action"] == "member_removed"


# --- groups one has left -------------------------------------------------------------------------

def test_a_left_groups_history_ends_at_the_notice_of_ones_going():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)
    sent_message(alice, group, "m2")
    notice = conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)
    sent_message(alice, group, "after Carol")

    page = selectors.member_history_page(user_id=carol.pk, conversation_id=group.pk)

    assert [m.seq for m in page.messages] == [1, 2, notice.seq] and not page.has_more
    assert sorted(m.user_id for m in page.members) == sorted([alice.pk, bob.pk])  # as they were then
    backwards = selectors.member_history_page(user_id=carol.pk, conversation_id=group.pk, limit=1)
    assert ([m.seq for m in backwards.messages], backwards.has_more) == ([notice.seq], True)
    forwards = selectors.member_history_page(user_id=carol.pk, conversation_id=group.pk, after_seq=2, limit=1)
    assert ([m.seq for m in forwards.messages], forwards.has_more) == ([notice.seq], False)


def test_a_left_group_is_summarised_as_its_former_member_last_saw_it():
    alice, bob, carol, dave = UserFactory.create_batch(4)
    group = group_conversation(alice, bob, carol, title="Climbing")
    notice = conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)
    receipts.mark_read(user=carol, conversation_id=group.pk, seq=1)
    # What happens after she went is not hers to see: a new member, new messages, a new title (no
    # client can rename a group yet; an operator's change in the database stands in for one).
    saved_contacts(alice, dave)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])
    sent_message(alice, group, "after Carol")
    Conversation.objects.filter(pk=group.pk).update(title="Bouldering")

    [summary] = selectors.conversation_summaries(user=carol)

    assert summary.left and summary.membership is None and summary.role is None
    assert (summary.title, summary.last_seq, summary.unread_count) == ("Climbing", notice.seq, 1)
    assert summary.last_message.pk == notice.pk and summary.last_activity_at == notice.created_at
    assert sorted(m.user_id for m in summary.members) == sorted([alice.pk, bob.pk])


def test_many_left_groups_cost_the_conversation_list_no_more_queries(django_assert_num_queries):
    alice, carol = UserFactory(), UserFactory()
    sent_message(carol, direct_conversation(carol, alice), "hi")

    def leave_groups(count):
        for _ in range(count):
            group = group_conversation(alice, carol, UserFactory())
            conversations.remove_member(actor=carol, conversation_id=group.pk, user_id=carol.pk)

    leave_groups(1)
    with django_assert_num_queries(5):  # hers, the groups she left, their members, the people in those, the last messages
        assert len(selectors.conversation_summaries(user=carol)) == 2
    leave_groups(20)
    with django_assert_num_queries(5):
        summaries = selectors.conversation_summaries(user=carol)
    assert [s.left for s in summaries] == [True] * 21 + [False]
    assert all(s.last_message.event["action"] == "member_left" for s in summaries[:21])


def test_catch_up_of_a_left_group_stops_once_received_and_reads_no_group_received_in_full():
    alice, bob, carol = UserFactory.create_batch(3)
    groups = [group_conversation(alice, bob, carol) for _ in range(3)]
    for group in groups:
        conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=carol.pk)
    for group in groups[1:]:
        receipts.mark_delivered(user=carol, conversation_id=group.pk, seq=2)

    assert [(m.conversation_id, m.seq) for m in selectors.undelivered_messages(user=carol)] == [
        (groups[0].pk, 1), (groups[0].pk, 2)]
    receipts.mark_delivered(user=carol, conversation_id=groups[0].pk, seq=2)
    assert not selectors.has_undelivered_messages(user_id=carol.pk)
    assert Departure.objects.filter(user=carol).count() == 3  # still in her list
    # The groups received in full are not even read: the statement goes by an index of the others.
    statement, params = selectors.behind_conversations_query(user_id=carol.pk)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables: show what it can use
            cursor.execute(f"EXPLAIN {statement}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
        plan = "\n".join(str(row[-1] if connection.vendor != "postgresql" else row[0]) for row in cursor.fetchall())
    assert "departure_undelivered" in plan, plan


# --- profiles_seen_by ----------------------------------------------------------------------------

def test_whose_profile_someone_sees_is_the_other_side_of_who_sees_theirs():
    """The people told of a new name or photo (profile_audience_ids) and the people who may download
    that photo (profiles_seen_by, read the other way) are the same people."""
    alice, bob, carol, dave, erin, stranger = (UserFactory() for _ in range(6))
    direct_conversation(alice, bob)
    group_conversation(carol, alice, dave)  # carol saves alice and dave as contacts to make it
    saved_contacts(erin, alice)
    everyone = [alice, bob, carol, dave, erin, stranger]

    for viewer in everyone:
        seen = set(selectors.profiles_seen_by(user_id=viewer.pk).values_list("pk", flat=True))
        assert seen == {u.pk for u in everyone if viewer.pk in selectors.profile_audience_ids(user_id=u.pk)}, viewer
    assert set(selectors.profiles_seen_by(user_id=stranger.pk).values_list("pk", flat=True)) == {stranger.pk}
    assert alice.pk in set(selectors.profiles_seen_by(user_id=erin.pk).values_list("pk", flat=True))
    assert erin.pk not in set(selectors.profiles_seen_by(user_id=alice.pk).values_list("pk", flat=True))
