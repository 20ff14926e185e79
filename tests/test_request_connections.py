"""A server process keeps no database connection per HTTP request it has served.

Django runs each ASGI request's code in a thread of its own, and connections belong to threads:
before frontdesk/request_connections.py, every request left an open connection behind until the
garbage collector happened to free it, and a burst of API calls ran PostgreSQL out of connections
(500s for everyone). Checked against a real server process (uvicorn, as `make run` serves), on SQLite (open files of the database)
and, under `make test-scaleout`, on PostgreSQL (its backends for the database). On PostgreSQL the
requests also share a few pooled connections instead of opening one each (messenger/settings.py,
MESSENGER_DB_POOL_SIZE), and one that finds none free in time is answered 503 `busy`.
"""

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.live_server import (
    LiveDatabase,
    ServerProcess,
    WsClient,
    direct_conversation,
    full_history,
    http,
    register,
    servers_unavailable_reason,
    upload_media,
)

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"needs uvicorn and Daphne: {_unavailable}")

REQUESTS = 60
_postgresql_only = pytest.mark.skipif(not os.environ.get("DATABASE_URL"),
                                      reason="connection pooling is the PostgreSQL setup (make test-scaleout)")


def open_connections(database: LiveDatabase, server: ServerProcess) -> int:
    if database.base_url:
        with database._admin_connection() as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database.name]).fetchone()[0]
    target = Path(database.name).resolve()
    count = 0
    for fd in Path(f"/proc/{server.pid}/fd").iterdir():
        try:
            count += Path(os.readlink(fd)) == target
        except OSError:  # closed meanwhile
            pass
    return count


@pytest.fixture
def server_and_user(tmp_path):
    """A real server process on a database of its own (PostgreSQL under DATABASE_URL), and a
    user's token: (database, server, token). Set MESSENGER_* variables (monkeypatch) first."""
    database = LiveDatabase(tmp_path)
    database.create()
    server = ServerProcess(database)
    try:
        server.start()
        _, token = register(server, "Ada")
        yield database, server, token
    finally:
        server.kill()
        database.drop()


def test_api_requests_leave_no_database_connections_behind(monkeypatch, request):
    # Collections as rare as they get: what closes the connections must be the server, not the collector.
    monkeypatch.setenv("MESSENGER_GC_THRESHOLD", "1000000,100,100")
    database, server, token = request.getfixturevalue("server_and_user")  # started with the setting above
    for _ in range(REQUESTS):
        status, body = http("GET", f"{server.url}/api/v1/conversations", token=token)
        assert status == 200, body

    assert open_connections(database, server) <= 2
    status, _ = http("GET", f"{server.url}/api/v1/conversations", token=token)
    assert status == 200


def sessions_opened(database: LiveDatabase) -> int:
    """Connections PostgreSQL has counted for the database, each as it ended."""
    with database._admin_connection() as conn:
        return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [database.name]).fetchone()[0]


@_postgresql_only
def test_api_requests_share_pooled_postgresql_connections(server_and_user):
    # Opening a PostgreSQL connection starts a backend process: ~4 ms of every request here, and a
    # fork per request for the database under load (docs/performance.md, change 41).
    database, server, token = server_and_user
    before = sessions_opened(database)
    for _ in range(REQUESTS):
        status, body = http("GET", f"{server.url}/api/v1/conversations", token=token)
        assert status == 200, body
    server.kill()
    deadline = time.monotonic() + 10
    while open_connections(database, server) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's backends end (and are counted) once it is gone
    assert sessions_opened(database) - before <= 3


@_postgresql_only
def test_pooled_connections_postgresql_dropped_are_replaced_unseen(server_and_user):
    # What a PostgreSQL restart or a pooler's idle timeout does: the pool checks a connection
    # before handing it out, so no request meets a dead one.
    database, server, token = server_and_user
    for _ in range(3):
        with database._admin_connection() as conn:
            dropped = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", [database.name]).fetchall()
        assert dropped
        status, body = http("GET", f"{server.url}/api/v1/conversations", token=token)
        assert status == 200, body


@_postgresql_only
def test_a_request_with_no_connection_free_gets_503_busy_and_nothing_else_breaks(monkeypatch, request):
    monkeypatch.setenv("MESSENGER_DB_POOL_SIZE", "1")
    monkeypatch.setenv("MESSENGER_DB_POOL_TIMEOUT", "0.5")
    database, server, token = request.getfixturevalue("server_and_user")  # started with the settings above
    with the_pools_one_connection_held(database, server, token):
        me = urllib.request.Request(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as busy:  # its headers matter here, so not http()
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(me, timeout=10)
        assert busy.value.code == 503
        assert busy.value.headers["Retry-After"] == "1"
        assert json.loads(busy.value.read())["error"] == {
            "code": "busy", "message": "The server is busy; try again in a moment.", "retry_after": 1}
    status, body = http("GET", f"{server.url}/api/v1/conversations", token=token)
    assert status == 200, body

@_postgresql_only
async def test_a_websocket_frame_with_no_connection_free_gets_busy_and_may_be_sent_again(monkeypatch, request):
    """What REST answers 503 `busy`, the websocket answers with a `busy` error: nothing was
    stored and the client may send the frame again, not a `server_error` and a traceback."""
    monkeypatch.setenv("MESSENGER_DB_POOL_SIZE", "1")
    monkeypatch.setenv("MESSENGER_DB_POOL_TIMEOUT", "0.5")
    database, server, token = request.getfixturevalue("server_and_user")  # started with the settings above
    bob, _ = register(server, "Bob")
    chat = direct_conversation(server, token, bob)["id"]
    photo = upload_media(server, token, b"a document, sent from the pool's connection")
    ada = await WsClient.connect(server, token, "ada")
    await ada.send(type="ready?", ref="probe")  # answered once the socket's catch-up is done
    assert (await ada.receive(timeout=10))["code"] == "unknown_type"
    frame = dict(type="message.send", client_id="doc-1", conversation=chat, media_id=photo["id"])
    try:
        with the_pools_one_connection_held(database, server, token):
            await ada.send(**frame)
            refused = await ada.receive(timeout=10)
            while refused["type"] != "error":  # past any live event on its way
                refused = await ada.receive(timeout=10)
        assert {k: refused.get(k) for k in ("code", "frame", "ref", "retry_after")} == {
            "code": "busy", "frame": "message.send", "ref": "doc-1", "retry_after": 1}
        assert [m["client_id"] for m in full_history(server, token, chat)] == []

        await ada.send(**frame)
        sent = (await ada.collect("message.sent", 1))[0]
        assert sent["message"]["media"]["id"] == photo["id"]
    finally:
        await ada.close()
    assert "Traceback" not in server.log_path.read_text(errors="replace")


@contextmanager
def the_pools_one_connection_held(database: LiveDatabase, server: ServerProcess, token: str):
    """The server's pool (of one, MESSENGER_DB_POOL_SIZE=1) has no connection free: its connection
    is taken by a request waiting on a lock held here. On the way out the lock goes, and that
    request is answered."""
    with psycopg.connect(database._url_for(database.name)) as blocker:
        blocker.execute("LOCK TABLE storage_conversation IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(http, "GET", f"{server.url}/api/v1/conversations", token=token)
            deadline = time.monotonic() + 10
            while not _waiting_on_a_lock(database) and time.monotonic() < deadline:
                time.sleep(0.05)
            yield
            blocker.rollback()
            assert held.result(timeout=10)[0] == 200  # the waiting request was answered once the lock went


def _waiting_on_a_lock(database: LiveDatabase) -> bool:
    with database._admin_connection() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                            [database.name]).fetchone()[0] > 0
