"""The websocket path's persistent PostgreSQL connections (MESSENGER_DB_POOL_SIZE=0), when PostgreSQL drops them."""

import asyncio
import time

import pytest
from django.conf import settings
from django.db import connection, connections

from frontdesk.db import HEALTH_CHECK_SECONDS
from tests.factories import direct_conversation
from tests.ws import db, drop_other_database_connections, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="persistent connections are the PostgreSQL setup"),
]


@pytest.fixture
def persistent_connections():
    """As deployed without the pool, MESSENGER_DB_POOL_SIZE=0 (the suite otherwise closes connections
    after each call): kept and health-checked. With the pool: tests/test_request_connections.py."""
    settings_dict = connections["default"].settings_dict  # one dict, shared by every thread's wrapper
    saved = settings_dict["CONN_MAX_AGE"], settings_dict["CONN_HEALTH_CHECKS"]
    settings_dict["CONN_MAX_AGE"], settings_dict["CONN_HEALTH_CHECKS"] = 600, True
    yield
    settings_dict["CONN_MAX_AGE"], settings_dict["CONN_HEALTH_CHECKS"] = saved
    # This thread's connection was dropped with the others; the database threads' connections would
    # keep the test database busy at teardown. Dropped, they are health-checked and replaced at their
    # next use, once the window in which a connection that just answered is trusted has passed.
    connection.close()
    drop_other_database_connections()
    time.sleep(HEALTH_CHECK_SECONDS + 0.1)


async def test_a_dropped_database_connection_is_replaced_and_no_message_is_lost(persistent_connections, sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(chat.pk, "before")
    assert await db(drop_other_database_connections)() >= 1

    # Right after the drop a frame may meet a dead connection (one per database thread at most): it
    # is answered with an error, and the same frame sent again (same client_id, as clients retry)
    # is stored once.
    answers = []
    for _ in range(settings.MESSENGER["DB_THREADS"] + 1):
        await a.send(type="message.send", client_id="retried", conversation=chat.pk, text="during")
        answers += await a.receive_types("message.sent", "error", count=1)
        if answers[-1]["type"] == "message.sent":
            break
    assert answers[-1]["type"] == "message.sent", answers
    assert {answer["code"] for answer in answers[:-1]} <= {"server_error"}

    await asyncio.sleep(HEALTH_CHECK_SECONDS + 0.2)  # past the window in which a connection that just answered is trusted
    assert await db(drop_other_database_connections)() >= 1
    after = await a.send_message(chat.pk, "after")  # the health check finds the dead connection first

    texts = [event["message"]["text"] for event in await b.receive_until_new(after) if event["type"] == "message.new"]
    assert texts == ["before", "during", "after"]
