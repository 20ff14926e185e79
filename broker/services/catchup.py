"""Catch-up: the messages a user's connecting websocket missed while no socket of theirs was
delivering them (docs/protocol.md), sent before anything live."""

from broker import events
from storage import async_sql, selectors
from storage.models import User


def backlog(*, user: User) -> list[dict]:
    """A `message.new` for every message above the user's delivered watermark, in order. May take
    long (a user back from weeks away): call it in a thread."""
    return [events.message_new(m) for m in selectors.undelivered_messages(user=user)]


def anything_missed(*, user_id: int) -> bool:
    """Whether there is a backlog at all: one indexed statement, usually answered "no", after which
    `backlog` (which may take long, so runs in a thread) need not be called."""
    return selectors.has_undelivered_messages(user_id=user_id)


async def anything_missed_on_loop(*, user_id: int) -> bool | None:
    """`anything_missed` from the event loop on PostgreSQL (storage/async_sql.py). None where it
    cannot be asked there (or failed): then call `anything_missed`."""
    rows = await async_sql.rows_or_none(*selectors.behind_conversations_query(user_id=user_id),
                                        asking="asking for a backlog")
    return None if rows is None else bool(rows)
