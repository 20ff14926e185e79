"""Sends and changes of members racing each other, each on its own database connection.

Each test holds one operation's transaction open and starts the other, which reads before it
waits: on PostgreSQL until it is seen waiting for a lock, on SQLite (whose writers queue on one
lock) a moment. What was read before the lock must not decide what is done after it.
"""

import asyncio
import threading
import time

import pytest
from django.db import connection, connections, transaction

from broker import publish
from broker.errors import BrokerError, Forbidden, NotFound
from broker.services import conversations, receipts
from broker.services.send import send_message, send_text_on_loop
from storage import async_sql
from storage.models import Departure, Media, Membership, Message
from tests.factories import UserFactory, group_conversation, saved_contacts

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 15  # seconds: only reached when something is broken


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def _until_the_other_waits() -> None:
    if connection.vendor != "postgresql":
        time.sleep(0.5)  # SQLite: the other writer queues on the write lock, or it has read already
        return
    deadline = time.monotonic() + WAIT
    while not _someone_waits_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.01)


def _in_thread(work, out: dict, key: str) -> threading.Thread:
    def run():
        try:
            out[key] = work()
        except BaseException as exc:  # noqa: BLE001 - the test reads what happened
            out[f"{key}_error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def held(first, second) -> dict:
    """`first()` in a transaction kept open until `second()` (started once `first` is done) waits
    for it; then `first` commits. Returns their results (or `<name>_error`)."""
    out, first_done, release = {}, threading.Event(), threading.Event()

    def run_first():
        with transaction.atomic():
            result = first()
            first_done.set()
            release.wait(WAIT)
        return result

    def start_second():
        first_done.wait(WAIT)
        return second()

    threads = [_in_thread(run_first, out, "first"), _in_thread(start_second, out, "second")]
    first_done.wait(WAIT)
    _until_the_other_waits()
    release.set()
    for thread in threads:
        thread.join(WAIT)
    first_done.set()
    return out


def a_media(owner) -> Media:
    return Media.objects.create(uploader=owner, kind="image", mime_type="image/jpeg", size=1, sha256="0" * 64,
                                file="x.jpg")


def notices(group) -> list[dict]:
    return list(Message.objects.filter(conversation=group, kind="system").order_by("seq").values_list("event", flat=True))


# --- a send racing a removal ---------------------------------------------------------------------
@pytest.mark.parametrize("with_media", [False, True], ids=["text", "media"])
def test_a_member_removed_as_they_send_has_nothing_stored_after_the_notice(with_media):
    admin, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(admin, bob, carol)
    media_id = a_media(bob).pk if with_media else None

    out = held(lambda: conversations.remove_member(actor=admin, conversation_id=group.pk, user_id=bob.pk),
               lambda: send_message(sender=bob, conversation_id=group.pk, client_id="late", text="still here?",
                                    media_id=media_id))

    assert isinstance(out.get("second_error"), Forbidden), out  # no longer a participant
    assert not Message.objects.filter(sender=bob, client_id="late").exists()


def test_a_member_removed_as_they_send_from_the_event_loop_has_nothing_stored():
    if connection.vendor != "postgresql" or not async_sql.enabled():
        pytest.skip("the event loop's statements run on PostgreSQL only")
    admin, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(admin, bob, carol)

    out = held(lambda: conversations.remove_member(actor=admin, conversation_id=group.pk, user_id=bob.pk),
               lambda: asyncio.run(send_text_on_loop(sender=bob, conversation_id=group.pk, client_id="ws-late",
                                                     text="hi", credential_checked=True)))

    assert out.get("second") is None, out  # left to send_message, which finds Bob gone
    assert not Message.objects.filter(sender=bob, client_id="ws-late").exists()


@pytest.mark.parametrize("with_media", [False, True], ids=["text", "media"])
def test_a_message_sent_as_someone_is_removed_is_not_sent_to_them(with_media, monkeypatch):
    admin, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(admin, bob, carol)
    media_id = a_media(carol).pk if with_media else None
    published = []
    publish_now = publish.publish_now
    monkeypatch.setattr(publish, "publish_now",
                        lambda groups, event, **kw: (published.append((groups, event)), publish_now(groups, event, **kw))[1])

    out = held(lambda: conversations.remove_member(actor=admin, conversation_id=group.pk, user_id=bob.pk),
               lambda: send_message(sender=carol, conversation_id=group.pk, client_id="c1", text="after Bob",
                                    media_id=media_id))

    notice, (message, created) = out["first"], out["second"]
    assert created and message.seq == notice.seq + 1
    told = [groups for groups, event in published
            if event.get("type") == "message.new" and event["message"]["seq"] == message.seq]
    assert told and publish.user_group(bob.pk) not in told[0] and publish.user_group(admin.pk) in told[0]


# --- changes of members racing each other --------------------------------------------------------
def test_one_member_removed_by_two_admins_at_once_is_announced_once():
    admin, other_admin, bob = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(admin, other_admin, bob)
    Membership.objects.filter(conversation=group, user=other_admin).update(role="admin")

    out = held(lambda: conversations.remove_member(actor=admin, conversation_id=group.pk, user_id=bob.pk),
               lambda: conversations.remove_member(actor=other_admin, conversation_id=group.pk, user_id=bob.pk))

    assert isinstance(out.get("second_error"), NotFound), out
    assert [e["action"] for e in notices(group)] == ["group_created", "member_removed"]
    assert Departure.objects.get(user=bob, conversation=group).through_seq == out["first"].seq


def test_of_two_admins_removing_each_other_the_second_is_refused():
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob, carol)
    Membership.objects.filter(conversation=group, user=bob).update(role="admin")

    out = held(lambda: conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=bob.pk),
               lambda: conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=alice.pk))

    assert isinstance(out.get("second_error"), Forbidden), out  # Bob is no longer a participant
    assert set(Membership.objects.filter(conversation=group).values_list("user_id", flat=True)) == {alice.pk, carol.pk}


def test_an_admin_removed_as_they_add_someone_adds_nobody():
    alice, bob, carol, dave = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob, carol)
    Membership.objects.filter(conversation=group, user=bob).update(role="admin")
    saved_contacts(bob, dave)

    out = held(lambda: conversations.remove_member(actor=alice, conversation_id=group.pk, user_id=bob.pk),
               lambda: conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[dave.pk]))

    assert isinstance(out.get("second_error"), BrokerError), out
    assert not Membership.objects.filter(conversation=group, user=dave).exists()


def test_the_same_person_added_by_two_admins_at_once_is_added_once():
    alice, bob, dave = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob)
    Membership.objects.filter(conversation=group, user=bob).update(role="admin")
    saved_contacts(alice, dave)
    saved_contacts(bob, dave)

    out = held(lambda: conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk]),
               lambda: conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[dave.pk]))

    assert out.get("second") == [], out  # already in: nothing to add, not a server error
    assert Membership.objects.filter(conversation=group, user=dave).count() == 1


def test_two_additions_at_once_keep_the_group_within_its_size(settings):
    settings.MESSENGER = {**settings.MESSENGER, "MAX_GROUP_MEMBERS": 3}
    alice, bob, dave, erin = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob)
    Membership.objects.filter(conversation=group, user=bob).update(role="admin")
    saved_contacts(alice, dave)
    saved_contacts(bob, erin)

    out = held(lambda: conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk]),
               lambda: conversations.add_members(actor=bob, conversation_id=group.pk, user_ids=[erin.pk]))

    assert isinstance(out.get("second_error"), BrokerError), out
    assert Membership.objects.filter(conversation=group).count() == 3


def test_an_ack_racing_the_removal_is_kept_for_catch_up(monkeypatch):
    """Bob's devices acknowledged up to 6 as he was being removed: catch-up must not send those
    again (the departure starts where his ack left him)."""
    admin, bob = UserFactory(), UserFactory()
    group = group_conversation(admin, bob)
    for n in range(5):
        send_message(sender=admin, conversation_id=group.pk, client_id=f"m{n}", text="hi")  # seqs 2..6
    paused, release, out = threading.Event(), threading.Event(), {}
    append_message = conversations.append_message

    def pausing_append_message(**kwargs):  # just after the removal read Bob's membership
        paused.set()
        release.wait(WAIT)
        return append_message(**kwargs)

    monkeypatch.setattr(conversations, "append_message", pausing_append_message)
    remover = _in_thread(lambda: conversations.remove_member(actor=admin, conversation_id=group.pk, user_id=bob.pk),
                         out, "removal")
    paused.wait(WAIT)
    acker = _in_thread(lambda: receipts.mark_delivered(user=bob, conversation_id=group.pk, seq=6), out, "ack")
    _until_the_other_waits()
    release.set()
    remover.join(WAIT)
    acker.join(WAIT)

    assert out.get("ack") is True and "removal_error" not in out, out
    departure = Departure.objects.get(user=bob, conversation=group)
    assert (departure.delivered_seq, departure.through_seq) == (6, 7)
