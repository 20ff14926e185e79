"""Messages keep few indexes, since every message sent writes each of them (storage/migrations/0004).
The lookups the dropped ones used to serve must still reach their rows through an index, not by
reading every message: with a million messages stored, that is the difference between a click and
a stall (deleting an account, a download's permission check, a retried send)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker.errors import NotFound
from broker.services import media as media_service
from broker.services import send
from storage import selectors
from storage.models import Media, Message
from tests.factories import UserFactory, direct_conversation, sent_message

pytestmark = pytest.mark.django_db


def message_queries(run, *, raises: type[Exception] | None = None) -> list[str]:
    """The SQL `run` sends that reads or changes messages, with its parameters filled in."""
    with CaptureQueriesContext(connection) as captured:
        if raises is None:
            run()
        else:
            with pytest.raises(raises):
                run()
    return [q["sql"] for q in captured.captured_queries if "storage_message" in q["sql"]]


def scans_messages(sql: str) -> bool:
    """Whether the database would read the whole message table to run `sql`."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The test's tables are tiny, where a scan is cheapest; forbidding it shows whether an
            # index could be used at all (PostgreSQL still scans when none can).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            return "Seq Scan on storage_message" in plan
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        plan = [row[-1] for row in cursor.fetchall()]
    names = {"storage_message", *re.findall(r'"storage_message" (?:AS )?"?(\w+)', sql)}  # and its aliases
    return any(line.split()[0] == "SCAN" and line.split()[1] in names for line in plan)


@pytest.fixture
def chat():
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    for n in range(3):
        sent_message(alice, conversation, f"m{n}")
    return alice, bob, conversation


def test_deleting_an_account_finds_its_messages_by_index(chat):
    alice, _, conversation = chat
    queries = message_queries(alice.delete)
    assert any("sender_id" in q for q in queries), queries
    assert not [q for q in queries if scans_messages(q)]
    assert Message.objects.filter(conversation=conversation, sender=None).count() == 3  # kept, authorless


def test_a_history_page_and_a_retried_send_find_messages_by_index(chat):
    alice, bob, conversation = chat
    membership = conversation.memberships.get(user=bob)
    queries = message_queries(lambda: selectors.history_page(membership=membership, before_seq=3, limit=2))
    queries += message_queries(lambda: send.send_message(
        sender=alice, conversation_id=conversation.pk, client_id="same", text="once"))
    queries += message_queries(lambda: send.send_message(
        sender=alice, conversation_id=conversation.pk, client_id="same", text="once"))
    assert queries and not [q for q in queries if scans_messages(q)]
    assert Message.objects.filter(sender=alice, client_id="same").count() == 1


def test_conversation_summaries_find_last_messages_by_index(chat):
    alice, bob, conversation = chat
    queries = message_queries(lambda: selectors.conversation_summaries(user=alice))
    assert queries and not [q for q in queries if scans_messages(q)], queries


def test_media_permission_and_clean_up_checks_find_messages_by_index(chat):
    alice, bob, conversation = chat
    media = Media.objects.create(uploader=alice, kind="image", mime_type="image/png", size=1, sha256="0" * 64,
                                 file="media/x.png")
    # Not his upload, and not sent where he is: finding that out reads messages.
    queries = message_queries(lambda: media_service.readable_media(user=bob, media_id=media.pk), raises=NotFound)
    queries += message_queries(lambda: media_service.media_unreferenced(media.pk))
    queries += message_queries(lambda: Media.objects.filter(pk=media.pk).delete())
    assert len(queries) == 3 and all("media_id" in q for q in queries), queries
    assert not [q for q in queries if scans_messages(q)]
