"""broker.services.send: the one door every message goes through."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from broker import signals
from broker.errors import Blocked, Conflict, InvalidInput, NotFound, RateLimited
from broker.services import people
from broker.services.send import send_message
from storage.models import Conversation, Message
from tests.factories import UserFactory, direct_conversation, group_conversation, membership, sent_message


# Each test below marked `both_ways` runs inside the test's transaction and in autocommit, as a
# server sends. They take different paths: on SQLite, a text message sent outside any transaction
# is stored in a transaction of its own on the driver's connection (send._store_text_on_driver),
# and anything else goes the general way; on PostgreSQL it is one statement either way.
both_ways = pytest.mark.parametrize("how", [
    pytest.param("in a transaction", marks=pytest.mark.django_db),
    pytest.param("as served", marks=pytest.mark.django_db(transaction=True)),
])


def seqs(conversation: Conversation) -> list[int]:
    return list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))


def in_threads(count: int, work) -> list:
    """Run `work(index)` in `count` threads that start together, each on its own connection."""
    start = threading.Barrier(count)

    def run(index):
        try:
            start.wait()
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@both_ways
def test_messages_are_numbered_from_one_without_gaps(how):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    numbers = [sent_message(sender, conversation).seq for sender in (alice, bob, alice)]

    assert numbers == [1, 2, 3]
    conversation.refresh_from_db()
    assert conversation.last_seq == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_get_gapless_seqs():
    senders = UserFactory.create_batch(4)
    group = group_conversation(*senders)
    per_sender = 5

    def send_several(index):
        return [
            send_message(sender=senders[index], conversation_id=group.pk, client_id=f"t{index}-{n}", text="hi")[0].seq
            for n in range(per_sender)
        ]

    results = in_threads(len(senders), send_several)

    total = per_sender * len(senders)
    assert sorted(seq for result in results for seq in result) == list(range(2, 2 + total))
    assert seqs(group) == list(range(1, 2 + total))
    group.refresh_from_db()
    assert group.last_seq == 1 + total


@pytest.mark.django_db(transaction=True)
def test_the_same_client_id_sent_concurrently_makes_one_message():
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    results = in_threads(4, lambda _: send_message(sender=alice, conversation_id=conversation.pk, client_id="once", text="hi"))

    assert len({message.pk for message, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert seqs(conversation) == [1]
    conversation.refresh_from_db()
    assert conversation.last_seq == 1  # the losers' seqs were rolled back, leaving no gap


@both_ways
def test_a_retried_client_id_returns_the_first_message(how):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    first, created = send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hello")

    again, created_again = send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hello")

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert seqs(conversation) == [1]


@both_ways
def test_client_ids_belong_to_their_sender(how):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    send_message(sender=alice, conversation_id=conversation.pk, client_id="same", text="from alice")
    _, created = send_message(sender=bob, conversation_id=conversation.pk, client_id="same", text="from bob")

    assert created
    assert seqs(conversation) == [1, 2]


@both_ways
def test_a_client_id_reused_in_another_conversation_is_a_conflict(how):
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    with_bob, with_carol = direct_conversation(alice, bob), direct_conversation(alice, carol)
    send_message(sender=alice, conversation_id=with_bob.pk, client_id="c1", text="for bob")

    with pytest.raises(Conflict) as refused:
        send_message(sender=alice, conversation_id=with_carol.pk, client_id="c1", text="for carol")

    assert refused.value.field == "client_id"
    assert seqs(with_carol) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("conversation", ["abc", 0, -1, True, 1.0, None, 2**63, "\u00b2", "\u0663", "1" * 5000, str(2**63)]),
        ("client_id", [None, "", "   ", 7, "x" * 65, "\udfff", "nul\x00byte"]),
        ("text", [None, "", " \n\t", 42, "x" * 4097, "nul\x00byte", "half a pair \ud83d"]),
    ],
)
def test_invalid_input_is_refused_naming_the_field(field, values):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    good = {"conversation_id": conversation.pk, "client_id": "c1", "text": "hello"}

    for value in values:
        with pytest.raises(InvalidInput) as refused:
            send_message(sender=alice, **{**good, ("conversation_id" if field == "conversation" else field): value})
        assert refused.value.field == field, value

    assert seqs(conversation) == []


@pytest.mark.django_db
@pytest.mark.parametrize("client_id", [7, 1.5, True, ["c1"], {"id": "c1"}])
def test_a_client_id_that_is_not_a_string_is_refused_as_such_not_as_missing(client_id):
    # A client that sent one (a number, over the websocket) would otherwise look for the bug in
    # the wrong place: "client_id is required".
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    with pytest.raises(InvalidInput) as refused:
        send_message(sender=alice, conversation_id=conversation.pk, client_id=client_id, text="hello")

    assert refused.value.field == "client_id"
    assert "must be a string, not a" in refused.value.message and "required" not in refused.value.message
    assert seqs(conversation) == []


@pytest.mark.django_db
def test_the_longest_allowed_text_and_client_id_are_accepted():
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    message, created = send_message(sender=alice, conversation_id=conversation.pk, client_id="c" * 64, text="x" * 4096)

    assert created and len(message.text) == 4096


@both_ways
def test_sending_to_a_conversation_you_are_not_in_is_not_found(how):
    alice, bob, mallory = UserFactory(), UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)

    for target in (conversation.pk, conversation.pk + 1000):
        with pytest.raises(NotFound):
            send_message(sender=mallory, conversation_id=target, client_id=f"c{target}", text="hi")

    assert seqs(conversation) == []


@pytest.mark.parametrize("who_blocks", ["recipient", "sender"])
@both_ways
def test_a_block_stops_direct_messages_both_ways(how, who_blocks):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    blocker, blocked = (bob, alice) if who_blocks == "recipient" else (alice, bob)
    people.block_user(blocker=blocker, user_id=blocked.pk)

    with pytest.raises(Blocked):
        send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hi")

    people.unblock_user(blocker=blocker, user_id=blocked.pk)
    assert send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hi")[0].seq == 1


@both_ways
def test_the_rate_limit_counts_each_sender_separately(how, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 2, "SEND_RATE_WINDOW": 3600}
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    sent_message(alice, conversation)
    sent_message(alice, conversation)

    with pytest.raises(RateLimited) as refused:
        sent_message(alice, conversation)

    assert 1 <= refused.value.retry_after <= 3600
    assert refused.value.as_dict()["retry_after"] == refused.value.retry_after
    assert sent_message(bob, conversation).seq == 3  # Bob has his own allowance
    assert seqs(conversation) == [1, 2, 3]


@both_ways
def test_the_rate_limit_window_slides_over_the_messages_sent(how, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 2, "SEND_RATE_WINDOW": 10}
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    first, second = sent_message(alice, conversation), sent_message(alice, conversation)
    for _ in range(3):  # refused sends do not count: they do not push the end of the wait back
        with pytest.raises(RateLimited):
            sent_message(alice, conversation)

    Message.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(seconds=11))
    assert sent_message(alice, conversation).seq == 3  # the first left the window: one send is free
    with pytest.raises(RateLimited) as refused:
        sent_message(alice, conversation)
    assert 9 <= refused.value.retry_after <= 10  # until the second leaves it
    assert seqs(conversation) == [1, 2, 3] and second.seq == 2


@both_ways
def test_the_rate_limit_counts_a_senders_messages_in_every_conversation(how, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 2, "SEND_RATE_WINDOW": 3600}
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    with_bob, with_carol = direct_conversation(alice, bob), direct_conversation(alice, carol)
    sent_message(alice, with_bob)
    sent_message(alice, group_conversation(alice, bob, carol))

    with pytest.raises(RateLimited):
        sent_message(alice, with_carol)
    assert seqs(with_carol) == []


@both_ways
def test_developer_apps_bots_are_not_held_to_the_per_user_send_rate(how, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 1, "SEND_RATE_WINDOW": 3600}
    bot, person = UserFactory(is_business=True), UserFactory()
    conversation = direct_conversation(bot, person)

    assert [sent_message(bot, conversation).seq for _ in range(3)] == [1, 2, 3]


@pytest.mark.django_db(transaction=True)  # autocommit, as served: no savepoint around the statement
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement send is PostgreSQL's")
def test_a_text_message_on_postgresql_is_checked_and_stored_in_one_statement():
    """Scaled out every statement is a round trip: the context, the send limit and the store go
    together (docs/performance.md, change 29), and the answer is the same as in steps."""
    from django.test.utils import CaptureQueriesContext

    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    sent_message(bob, conversation)

    with CaptureQueriesContext(connection) as captured:
        message, created = send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hi")

    assert len(captured) == 1 and created and message.seq == 2
    stored = Message.objects.get(pk=message.pk)
    assert (stored.sender_id, stored.seq, stored.text, stored.client_id, stored.kind, stored.event) == \
        (alice.pk, 2, "hi", "c1", "text", None)
    assert stored.created_at == message.created_at
    assert (membership(alice, conversation).read_seq, membership(bob, conversation).read_seq) == (2, 1)
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 2


@both_ways
def test_sending_marks_the_conversation_seen_by_the_sender(how):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    sent_message(alice, conversation)
    sent_message(alice, conversation)

    sent_message(bob, conversation)

    bob_member, alice_member = membership(bob, conversation), membership(alice, conversation)
    assert (bob_member.delivered_seq, bob_member.read_seq) == (3, 3)
    assert (alice_member.delivered_seq, alice_member.read_seq) == (2, 2)


@pytest.mark.django_db
def test_other_apps_hear_of_each_stored_message_once_after_commit(django_capture_on_commit_callbacks):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    heard = []

    def receiver(sender, message, **kwargs):
        heard.append(message.pk)

    signals.message_stored.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            message, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hi")
            assert heard == []  # not before the commit
        with django_capture_on_commit_callbacks(execute=True):
            send_message(sender=alice, conversation_id=conversation.pk, client_id="c1", text="hi")
    finally:
        signals.message_stored.disconnect(receiver)

    assert heard == [message.pk]


@pytest.mark.django_db
def test_a_websocket_send_checks_its_device_in_the_conversation_query_at_no_extra_query():
    """A websocket re-checks its credential before each frame; for a send that rides on the query
    the send makes anyway, so a message costs the database no round trip more for it."""
    from django.test.utils import CaptureQueriesContext

    from broker.errors import CredentialRevoked
    from storage.models import Device
    from tests.factories import user_with_token

    alice, _ = user_with_token()
    bob = UserFactory()
    conversation = direct_conversation(alice, bob)
    device = Device.objects.get(user=alice)
    send_message(sender=alice, conversation_id=conversation.pk, client_id="warm", text="hi")  # first-use caches

    def queries(**credential) -> int:
        with CaptureQueriesContext(connection) as captured:
            send_message(sender=alice, conversation_id=conversation.pk, client_id=f"c{len(credential)}", text="hi",
                         **credential)
        return len(captured)

    assert queries(device_id=device.pk) == queries()

    device_id = device.pk
    device.delete()  # logged out
    with pytest.raises(CredentialRevoked):
        send_message(sender=alice, conversation_id=conversation.pk, client_id="after", text="hi", device_id=device_id)
    assert not Message.objects.filter(client_id="after").exists()


@pytest.mark.django_db(transaction=True)  # autocommit, as served
def test_a_text_message_stored_on_sqlites_own_connection_is_the_one_the_general_path_stores(monkeypatch):
    """As served on SQLite, a text message is written by its own transaction on the driver's
    connection, with the values a text message's fields give; inside a transaction, by the general
    path. Both rows, the conversation and the author's watermarks come out the same, and each
    message is announced once, after its commit."""
    from broker.services import send as send_module

    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    on_driver = []
    store_on_driver = send_module._store_text_on_driver
    monkeypatch.setattr(send_module, "_store_text_on_driver",
                        lambda **kwargs: on_driver.append(store_on_driver(**kwargs)) or on_driver[-1])
    heard = []

    def receiver(sender, message, **kwargs):
        heard.append((message.pk, Message.objects.filter(pk=message.pk).exists()))

    signals.message_stored.connect(receiver)
    try:
        served, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="served", text=" hi\n")
        author = membership(alice, conversation)
        assert (author.delivered_seq, author.read_seq) == (1, 1)
        with transaction.atomic():
            general, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="general", text=" hi\n")
    finally:
        signals.message_stored.disconnect(receiver)

    if connection.vendor == "sqlite":
        assert on_driver[0] is not None and on_driver[1] is None  # the second ran inside a transaction
    rows = list(Message.objects.filter(conversation=conversation).order_by("seq").values(
        "seq", "sender_id", "client_id", "kind", "text", "event", "media_id", "created_at"))
    assert [(r["seq"], r["client_id"]) for r in rows] == [(1, "served"), (2, "general")]
    for row, message in zip(rows, (served, general)):
        assert (row["sender_id"], row["kind"], row["text"], row["event"], row["media_id"]) == \
            (alice.pk, Message.Kind.TEXT, " hi\n", None, None)
        assert row["created_at"] == message.created_at and row["created_at"].tzinfo is not None
        assert (message.pk, message.seq) == (Message.objects.get(client_id=row["client_id"]).pk, row["seq"])
    conversation.refresh_from_db()
    assert (conversation.last_seq, conversation.last_activity_at) == (2, general.created_at)
    author = membership(alice, conversation)
    assert (author.delivered_seq, author.read_seq) == (2, 2)
    assert heard == [(served.pk, True), (general.pk, True)]


@pytest.mark.django_db(transaction=True)  # autocommit, as served
def test_a_send_from_a_logged_out_device_stores_nothing_as_served():
    from broker.errors import CredentialRevoked
    from storage.models import Device
    from tests.factories import user_with_token

    alice, _ = user_with_token()
    conversation = direct_conversation(alice, UserFactory())
    device_id = Device.objects.get(user=alice).pk
    assert send_message(sender=alice, conversation_id=conversation.pk, client_id="before", text="hi",
                        device_id=device_id)[1]

    Device.objects.filter(pk=device_id).delete()  # logged out
    with pytest.raises(CredentialRevoked):
        send_message(sender=alice, conversation_id=conversation.pk, client_id="after", text="hi", device_id=device_id)
    assert seqs(conversation) == [1]
    conversation.refresh_from_db()
    assert conversation.last_seq == 1
