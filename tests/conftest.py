"""Shared test setup.

The suite runs twice under `make test`: on the embedded default (SQLite file, in-memory channel
layer) and, with DATABASE_URL and REDIS_URL set, on PostgreSQL and the Redis channel layer. When
those services are unreachable the second run skips with the reason, unless
MESSENGER_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

import multiprocessing
import os
import socket
import tempfile
import uuid
import weakref
from urllib.parse import urlparse

import pytest

# A forked live server deadlocks after async ORM use in the parent; spawn a fresh interpreter.
multiprocessing.set_start_method("spawn", force=True)


def _reachable(url: str, default_port: int) -> str | None:
    """None if something listens at the URL's host and port, else the reason it cannot be reached."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{parsed.scheme} at {host}:{port} is not reachable ({exc})"


def _missing_services() -> list[str]:
    reasons = []
    if os.environ.get("DATABASE_URL"):
        reason = _reachable(os.environ["DATABASE_URL"], 5432)
        if reason:
            reasons.append(reason)
    if os.environ.get("REDIS_URL"):
        reason = _reachable(os.environ["REDIS_URL"], 6379)
        if reason:
            reasons.append(reason)
    return reasons


def pytest_report_header(config):
    from django.conf import settings

    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    return f"messenger backends: database={database}, channel layer={layer}"


def pytest_collection_modifyitems(config, items):
    reasons = _missing_services()
    if not reasons:
        return
    reason = "scale-out services unavailable: " + "; ".join(reasons)
    if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(reason + " (MESSENGER_REQUIRE_SERVICES=1 makes this a failure)")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_configure(config):
    from django.conf import settings

    # Each run gets its own channel-layer namespace on a shared Redis.
    if settings.REDIS_URL:
        run_prefix = f"test-{uuid.uuid4().hex[:8]}"
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = run_prefix
        settings.CACHES["default"]["KEY_PREFIX"] = run_prefix
    # Persistent or pooled connections in the websocket worker threads would keep PostgreSQL's test
    # database busy at teardown; tests open them per call instead. The pool is tested where it is
    # used, in real server processes (tests/test_request_connections.py, tests/test_scaleout.py).
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
        settings.DATABASES["default"].get("OPTIONS", {}).pop("pool", None)
    # A test database of this run's own, so two runs on one machine never share one.
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(settings.DATA_DIR / f"test_db_{os.getpid()}.sqlite3")
    else:
        database.setdefault("TEST", {})["NAME"] = f"test_{database['NAME']}_{os.getpid()}"
    settings.MESSENGER["SEND_RATE"] = 1000
    # Uploads of this run go to a temporary folder of its own (tests/broker/test_media.py gives
    # each media test a fresh one).
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="messenger-test-media-")
    # Every test client is 127.0.0.1; tests/security lowers these to test the throttles.
    settings.MESSENGER.update(LOGIN_RATE_PER_IP=100_000, REGISTER_RATE_PER_IP=100_000, REGISTER_RATE_PER_PHONE=1000)
    # The default hasher costs ~0.2 s a password on purpose; tests register and log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _lighter_flush_between_tests(postgresql=database["ENGINE"].endswith("postgresql"))


def _lighter_flush_between_tests(*, postgresql: bool) -> None:
    """How Django empties the database after each transactional test (its `flush` command), made
    cheaper; about 250 tests of a run end that way.

    - Content types and permissions stay. They follow from the models, and the flush's post_migrate
      signal would otherwise make every one of them again: 140 ms a test on PostgreSQL. The signal
      is still sent if anything else listens for it.
    - On PostgreSQL, DELETEs in one transaction instead of a TRUNCATE (foreign keys are checked at
      commit, when every table is empty). TRUNCATE gives each table a new file, synced to disk:
      300-400 ms for this schema's nearly empty tables, against 4-13 ms.
    Sequences go on, as after Django's own flush between tests."""
    from django.core.management.commands import flush

    derived_from_models = {"django_content_type", "auth_permission"}

    def sql_flush(style, connection, reset_sequences=True, allow_cascade=False):
        tables = [table for table in connection.introspection.django_table_names(only_existing=True)
                  if table not in derived_from_models]
        if postgresql and tables and not reset_sequences and not allow_cascade:
            return [" ".join(f"DELETE FROM {connection.ops.quote_name(table)};" for table in tables)]
        return connection.ops.sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)

    remake_everything = flush.emit_post_migrate_signal

    def emit_post_migrate_signal(*args, **kwargs):
        if _post_migrate_receivers() - {"create_contenttypes", "create_permissions"}:
            remake_everything(*args, **kwargs)  # something else answers it too: let it

    flush.sql_flush = sql_flush
    flush.emit_post_migrate_signal = emit_post_migrate_signal


def _post_migrate_receivers() -> set[str]:
    from django.db.models.signals import post_migrate

    receivers = set()
    for _, receiver, *_ in post_migrate.receivers:
        function = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
        receivers.add(getattr(function, "__name__", repr(function)))
    return receivers


def pytest_unconfigure(config):
    import shutil

    from django.conf import settings

    if "messenger-test-media-" in str(getattr(settings, "MEDIA_ROOT", "")):
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


def _clear_this_runs_cache(cache) -> None:
    # RedisCache.clear() is FLUSHDB, which would also wipe other runs sharing the Redis database.
    if hasattr(cache, "_cache") and hasattr(cache._cache, "get_client"):
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def fresh_cache_and_layer():
    """No presence counts, rate-limit windows or channel-layer groups leak between tests."""
    from channels.layers import channel_layers
    from django.core.cache import cache

    _clear_this_runs_cache(cache)
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def api_client():
    """A JSON client whose every /api/ response is validated against the OpenAPI document."""
    from tests.openapi import SchemaCheckedClient

    return SchemaCheckedClient()


@pytest.fixture
def operator(admin_user):
    """A browser logged into the admin site as a superuser."""
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    return client
