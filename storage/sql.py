"""Hand-written SQL for the few statements that run for every message, receipt and websocket frame.

Each is a single indexed lookup or update. Built through the ORM, such a statement costs 0.3-0.8 ms
of Python on the benchmark machine against ~0.02 ms for the database to run it, and the hot path
runs several per message (docs/performance.md). The SQL here is what SQLite (>= 3.35, for
RETURNING) and PostgreSQL both speak; table and column names come from the models.

On SQLite even Django's cursor wrapper costs several times the statement (a new cursor, the
thread check, a regular expression turning %s into ?, for each statement: ~11 us against ~1 us for
`SELECT 1`), so there the statements go straight to the driver's connection, with Django's error
translation (an IntegrityError is still django.db's) and its broken-transaction check. Anything
that watches queries (DEBUG's query log, assertNumQueries, execute wrappers) gets Django's path.
"""

import re

from django.db import DEFAULT_DB_ALIAS, connection, connections

_quoted_tables: dict[type, str] = {}
_qmark_queries: dict[str, str] = {}


def table(model) -> str:
    # Keyed by the model alone: asking the connection its vendor is a context-local lookup on every
    # call, and SQLite and PostgreSQL quote names alike ("name").
    quoted = _quoted_tables.get(model)
    if quoted is None:
        quoted = _quoted_tables[model] = connection.ops.quote_name(model._meta.db_table)
    return quoted


def _direct_sqlite(db):
    """The driver's connection when a statement may skip Django's cursor (see the module's docstring)."""
    if db.vendor != "sqlite" or db.queries_logged or db.execute_wrappers:
        return None
    if db.connection is None:
        db.ensure_connection()
    db.validate_no_broken_transaction()
    return db.connection


def _qmark(sql: str) -> str:
    query = _qmark_queries.get(sql)
    if query is None:  # the statements are a handful of constant strings: the cache stays small
        query = _qmark_queries[sql] = re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")
    return query


def rows(sql: str, params: list) -> list[tuple]:
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            return driver.execute(_qmark(sql), params).fetchall()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def one(sql: str, params: list) -> tuple | None:
    """The first row (e.g. of an UPDATE/INSERT ... RETURNING), or None."""
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            cursor = driver.execute(_qmark(sql), params)
            try:
                return cursor.fetchone()
            finally:
                cursor.close()  # an UPDATE ... RETURNING is complete only once its cursor is done
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute(sql: str, params: list) -> int:
    """Run a write; the number of rows it changed."""
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            return driver.execute(_qmark(sql), params).rowcount
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
