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

On PostgreSQL, unless MESSENGER_PG_PREPARED_STATEMENTS=0, they run as prepared
statements (server-side binding), each connection preparing each statement once. Django sends a
query as text with the values inlined, which PostgreSQL parses and plans every time: for the conversation query every message and receipt runs, planning took
0.2-0.5 ms against 0.05-0.1 ms to run it; the whole call took 0.77 ms back to back and 1.73 ms
after 50 ms idle, against 0.27 and 0.90 ms prepared (docs/performance.md, change 27). With the
earlier code (several statements per send) one-to-one chats at 200 messages/s, that machine's edge,
queued in half the benchmark's rounds with them and in none without, for reasons not found, so they
were opt-in; since a send is one statement (change 29) they were faster in every alternating run
at a load the machine could hold, and PostgreSQL spent about half the CPU per message (change 31), so they are the default.
Not behind PgBouncer in transaction mode older than 1.21 (it cannot keep a prepared statement
with its connection).
"""

import contextlib
import re

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

PREPARE_ONLY_WHEN_ASKED = 2**31 - 1
_quoted_tables: dict[type, str] = {}
_qmark_queries: dict[str, str] = {}


def table(model) -> str:
    # Keyed by the model alone: asking the connection its vendor is a context-local lookup on every
    # call, and SQLite and PostgreSQL quote names alike ("name").
    quoted = _quoted_tables.get(model)
    if quoted is None:
        quoted = _quoted_tables[model] = connection.ops.quote_name(model._meta.db_table)
    return quoted


def columns(model, alias: str, label: str) -> str:
    """Every column of `model` in a SELECT, from table `alias`, named `<label>_<n>` (unique where
    two models' columns share names); `from_row` makes the instance back."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)} AS {label}_{n}"
                     for n, field in enumerate(model._meta.concrete_fields))


def from_row(model, values):
    """The `model` instance of a row's `columns(model, ...)`, as the ORM loads it. For PostgreSQL's
    rows (psycopg's types are the models' own: no converter is needed for these models' fields)."""
    return model.from_db(DEFAULT_DB_ALIAS, [f.attname for f in model._meta.concrete_fields], values)


def _direct_sqlite(db):
    """The driver's connection when a statement may skip Django's cursor (see the module's docstring)."""
    if db.vendor != "sqlite" or db.queries_logged or db.execute_wrappers:
        return None
    if db.connection is None:
        db.ensure_connection()
    db.validate_no_broken_transaction()
    return db.connection


def sqlite_driver_for_transaction(db):
    """SQLite's own connection, for a caller that runs a whole transaction on it
    (`driver_transaction`): what `_direct_sqlite` allows, and no transaction open around the call
    (Django's autocommit, no atomic block). None otherwise: the caller goes through Django."""
    if db.vendor != "sqlite" or not db.get_autocommit() or db.in_atomic_block:
        return None
    return _direct_sqlite(db)


@contextlib.contextmanager
def driver_transaction(driver, db):
    """BEGIN IMMEDIATE (as DATABASES' transaction_mode) ... COMMIT on `sqlite_driver_for_transaction`'s
    connection, rolled back if the block raises, with Django's error translation. Django's atomic
    block does the same for 13-23 us more, and the hot path's Python costs three to five times as
    much after a pause as back to back (docs/performance.md, change 47)."""
    with db.wrap_database_errors:
        driver.execute("BEGIN IMMEDIATE")
        try:
            yield driver
            driver.commit()
        except BaseException:
            if driver.in_transaction:  # the block raised, or the COMMIT itself failed
                driver.rollback()
            raise


def _prepared_postgresql(db):
    """A cursor that binds on the server and prepares what it runs, when a statement may skip
    Django's cursor on PostgreSQL (see the module's docstring); None otherwise."""
    if db.vendor != "postgresql" or db.queries_logged or db.execute_wrappers \
            or not settings.MESSENGER["PG_PREPARED_STATEMENTS"]:
        return None
    db.close_if_health_check_failed()  # what Django's cursor() does first, then the same checks
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    if db.connection.prepare_threshold is None:
        # Django opens connections with psycopg's prepared statements off, and then `prepare=True`
        # prepares nothing. With a threshold no query reaches, only what asks is prepared. (Set here
        # rather than in DATABASES: on a connection with a threshold psycopg keeps count of every
        # query it runs, the ORM's included, which the default setup need not pay for.)
        db.connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED
    # Whatever cursor class Django gave the connection (client-side binding): this one binds on the
    # server, which is what prepared statements need.
    return psycopg.Cursor(db.connection)


def qmark(sql: str) -> str:
    """A statement written with %s placeholders as SQLite's driver takes it (? placeholders), cached."""
    query = _qmark_queries.get(sql)
    if query is None:  # the statements are a handful of constant strings: the cache stays small
        query = _qmark_queries[sql] = re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")
    return query


def rows(sql: str, params: list) -> list[tuple]:
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            return driver.execute(qmark(sql), params).fetchall()
    prepared = _prepared_postgresql(db)
    if prepared is not None:
        with db.wrap_database_errors, prepared:
            return prepared.execute(sql, params, prepare=True).fetchall()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def one(sql: str, params: list) -> tuple | None:
    """The first row (e.g. of an UPDATE/INSERT ... RETURNING), or None."""
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            cursor = driver.execute(qmark(sql), params)
            try:
                return cursor.fetchone()
            finally:
                cursor.close()  # an UPDATE ... RETURNING is complete only once its cursor is done
    prepared = _prepared_postgresql(db)
    if prepared is not None:
        with db.wrap_database_errors, prepared:
            return prepared.execute(sql, params, prepare=True).fetchone()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute(sql: str, params: list) -> int:
    """Run a write; the number of rows it changed."""
    db = connections[DEFAULT_DB_ALIAS]
    driver = _direct_sqlite(db)
    if driver is not None:
        with db.wrap_database_errors:
            return driver.execute(qmark(sql), params).rowcount
    prepared = _prepared_postgresql(db)
    if prepared is not None:
        with db.wrap_database_errors, prepared:
            return prepared.execute(sql, params, prepare=True).rowcount
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
