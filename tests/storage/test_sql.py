"""storage/sql.py on PostgreSQL: with MESSENGER_PG_PREPARED_STATEMENTS (the default) the hot path's
statements are prepared once per connection; with it off (behind an old PgBouncer) nothing is."""

import pytest
from django.db import connection

from broker.services.receipts import mark_delivered
from broker.services.send import send_message
from tests.factories import UserFactory, direct_conversation

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"),
]


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def _send_and_acknowledge(alice, bob, chat, number: int) -> None:
    message, created = send_message(sender=alice, conversation_id=chat.pk, client_id=f"c{number}", text="hi")
    assert created and message.seq == number + 1
    assert mark_delivered(user=bob, conversation_id=chat.pk, seq=message.seq)


def test_sends_and_receipts_reuse_their_prepared_statements(settings):
    settings.MESSENGER = {**settings.MESSENGER, "PG_PREPARED_STATEMENTS": True}  # the default
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    _send_and_acknowledge(alice, bob, chat, 0)
    prepared = set(_prepared_statements())  # this connection's, earlier tests' included

    # The first message prepared (or found prepared) what a send and a receipt run, one statement
    # each: the send's context, limit and store; the receipt's context and watermark.
    assert any(s.startswith("WITH context AS (SELECT") and "INSERT INTO" in s for s in prepared), prepared
    assert any(s.startswith("WITH context AS (SELECT") and "SET delivered_seq = " in s for s in prepared), prepared

    # The next ones run them again, preparing nothing more.
    _send_and_acknowledge(alice, bob, chat, 1)
    _send_and_acknowledge(alice, bob, chat, 2)
    assert set(_prepared_statements()) == prepared


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_sends_prepare_nothing(settings):
    """What a PgBouncer that cannot keep them needs (MESSENGER_PG_PREPARED_STATEMENTS=0): Django's path."""
    settings.MESSENGER = {**settings.MESSENGER, "PG_PREPARED_STATEMENTS": False}
    connection.close()  # a new session: nothing prepared in it by earlier tests
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)

    for number in range(3):
        _send_and_acknowledge(alice, bob, chat, number)

    assert _prepared_statements() == []
