"""A server process keeps no database connection per HTTP request it has served.

Django runs each ASGI request's code in a thread of its own, and connections belong to threads:
before frontdesk/request_connections.py, every request left an open connection behind until the
garbage collector happened to free it, and a burst of API calls ran PostgreSQL out of connections
(500s for everyone). Checked against a real server process (uvicorn, as `make run` serves), on SQLite (open files of the database)
and, under `make test-scaleout`, on PostgreSQL (its backends for the database).
"""

import os
from pathlib import Path

import pytest

from tests.live_server import LiveDatabase, ServerProcess, http, register, servers_unavailable_reason

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"needs uvicorn and Daphne: {_unavailable}")

REQUESTS = 60


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


def test_api_requests_leave_no_database_connections_behind(tmp_path, monkeypatch):
    # Collections as rare as they get: what closes the connections must be the server, not the collector.
    monkeypatch.setenv("MESSENGER_GC_THRESHOLD", "1000000,100,100")
    database = LiveDatabase(tmp_path)
    database.create()
    server = ServerProcess(database)
    try:
        server.start()
        _, token = register(server, "Ada")
        for _ in range(REQUESTS):
            status, body = http("GET", f"{server.url}/api/v1/conversations", token=token)
            assert status == 200, body

        assert open_connections(database, server) <= 2
        status, _ = http("GET", f"{server.url}/api/v1/conversations", token=token)
        assert status == 200
    finally:
        server.kill()
        database.drop()
