"""Hand-written SQL for the few statements that run for every message, receipt and websocket frame.

Each is a single indexed lookup or update. Built through the ORM, such a statement costs 0.3-0.8 ms
of Python on the benchmark machine against ~0.02 ms for the database to run it, and the hot path
runs several per message (docs/performance.md). The SQL here is what SQLite (>= 3.35, for
RETURNING) and PostgreSQL both speak; table and column names come from the models.
"""

from django.db import connection


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def one(sql: str, params: list) -> tuple | None:
    """The first row (e.g. of an UPDATE/INSERT ... RETURNING), or None."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute(sql: str, params: list) -> int:
    """Run a write; the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
