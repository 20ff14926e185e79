"""Real server processes for end-to-end tests.

`LiveDatabase` makes a throwaway, migrated database that no other test uses: a SQLite file in a
temporary folder on the embedded setup, or a uniquely named PostgreSQL database (created and dropped
here) on the server that `DATABASE_URL` points at. `ServerProcess` runs uvicorn (as `make run` does)
or Daphne on it as a subprocess on 127.0.0.1, which can be SIGKILLed and started again on the same
data. `http` and `WsClient` talk to such a server the way client apps do: JSON over HTTP and the
websocket protocol.

Nothing here touches pytest-django's databases or the Django settings of the test process.
Every wait is bounded in time; every process started is tracked so the caller can kill it.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
DAPHNE = Path(sys.executable).with_name("daphne")
UVICORN = Path(sys.executable).with_name("uvicorn")
SERVERS = {"daphne", "uvicorn"}
# The flags `make run` gives uvicorn (Makefile: UVICORN_FLAGS), which every test server uses too.
UVICORN_FLAGS = ["--lifespan", "off", "--ws-max-size", "1048576"]
HOST = "127.0.0.1"
PASSWORD = "correct horse battery"

# requests to 127.0.0.1 never go through a proxy, whatever the environment says
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_phone_numbers = itertools.count(2000)


def servers_unavailable_reason() -> str | None:
    """Why uvicorn and Daphne cannot serve on 127.0.0.1 here, or None if they should."""
    for executable in (UVICORN, DAPHNE):
        if not executable.exists():
            return f"{executable.name} is not installed beside the interpreter ({executable} is missing)"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            probe.listen(1)
    except OSError as exc:
        return f"cannot listen on {HOST} here ({exc})"
    return None


_ports_given: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port free now and never handed out before in this run (servers start in parallel threads)."""
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((HOST, 0))
                port = probe.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no unused port found on 127.0.0.1")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- database -------------------------------------------------------------------------------------
class LiveDatabase:
    """A migrated database of its own: SQLite file, or PostgreSQL when DATABASE_URL is set."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.token = uuid.uuid4().hex[:10]
        self.base_url = os.environ.get("DATABASE_URL", "")
        self.name = f"messenger_live_{self.token}" if self.base_url else str(workdir / "live.sqlite3")
        self.redis_url = os.environ.get("REDIS_URL", "")
        self.prefix = f"live-{self.token}"  # channel layer and cache keys of these servers only
        self.created = False

    # The environment every process on this database runs with.
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH", "SQLITE_TEST_PATH"}}
        env.update(
            DJANGO_SETTINGS_MODULE="messenger.settings",
            MESSENGER_DATA_DIR=str(self.workdir / "data"),
            SECRET_KEY=f"live-server-tests-{self.token}",  # shared by every process, never a file race
            CHANNEL_LAYER_PREFIX=self.prefix,
            # These tests count messages, not rate limits (tests/broker covers those).
            MESSENGER_SEND_RATE="100000",
            # ...nor login and registration limits: every client here comes from 127.0.0.1.
            MESSENGER_LOGIN_RATE_PER_IP="100000",
            MESSENGER_REGISTER_RATE_PER_IP="100000",
            DEBUG="0",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        if self.base_url:
            env["DATABASE_URL"] = self._url_for(self.name)
        else:
            env["SQLITE_PATH"] = self.name
        return env

    def _url_for(self, dbname: str) -> str:
        parsed = urlparse(self.base_url)
        return urlunparse(parsed._replace(path="/" + quote(dbname)))

    def _admin_connection(self):
        import psycopg

        parsed = urlparse(self.base_url)
        return psycopg.connect(
            host=parsed.hostname or HOST, port=parsed.port or 5432, user=unquote(parsed.username or "") or None,
            password=unquote(parsed.password or "") or None, dbname="postgres", autocommit=True, connect_timeout=5,
        )

    def create(self, timeout: float = 60) -> None:
        """Make the database, a copy of a template migrated once per test run (`migrated_template`):
        a migration takes 3 s, a copy a few hundred milliseconds, and a run makes about ten."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        template = migrated_template(self.base_url, timeout)
        if self.base_url:
            from psycopg import sql

            with self._admin_connection() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(self.name), sql.Identifier(template.name)))
        else:
            import sqlite3

            # SQLite's backup, not a file copy: it takes whatever is still in the template's WAL too.
            source, target = sqlite3.connect(template.name), sqlite3.connect(self.name)
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
        self.created = True

    def migrate_afresh(self, timeout: float = 60) -> None:
        """Make the database and run every migration on it, as a deployment does."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        if self.base_url:
            from psycopg import sql

            with self._admin_connection() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, env=self.env(),
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def drop(self) -> None:
        """Remove the database (call after every server on it is dead) and these servers' Redis keys."""
        if self.base_url and self.created:
            from psycopg import sql

            with self._admin_connection() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [self.name])
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.name)))
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
            try:
                keys = list(itertools.islice(client.scan_iter(match=f"{self.prefix}*", count=500), 100_000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start:start + 500])
            finally:
                client.close()
        self.created = False


_templates: dict[str, LiveDatabase] = {}
_templates_lock = threading.Lock()


def migrated_template(base_url: str, timeout: float = 60) -> LiveDatabase:
    """This run's migrated database on `base_url`'s server (a SQLite file where it is empty), made
    on first use and removed as the run ends. Nothing connects to it after its migration, as
    PostgreSQL's CREATE DATABASE ... TEMPLATE requires."""
    with _templates_lock:
        template = _templates.get(base_url)
        if template is None:
            workdir = Path(tempfile.mkdtemp(prefix="messenger-live-template-"))
            template = LiveDatabase(workdir)
            template.base_url = base_url
            if base_url:
                template.name = f"messenger_live_template_{template.token}"
            try:
                template.migrate_afresh(timeout)
            except BaseException:
                template.drop()
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
            atexit.register(template.drop)
            _templates[base_url] = template
        return template


# --- server processes -----------------------------------------------------------------------------
class ServerProcess:
    """One uvicorn (or, with server="daphne", Daphne) process serving messenger.asgi on 127.0.0.1."""

    _numbers = itertools.count(1)

    def __init__(self, database: LiveDatabase, server: str = "uvicorn"):
        if server not in SERVERS:
            raise ValueError(f"server must be one of {sorted(SERVERS)}")
        self.database = database
        self.server = server
        self.number = next(self._numbers)
        self.log_path = database.workdir / f"{server}-{self.number}.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def start(self, timeout: float = 20, attempts: int = 3) -> "ServerProcess":
        """Start the server and wait until /healthz answers 200; retries on a port taken meanwhile."""
        for _ in range(attempts):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    cwd=ROOT, env=self.database.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            if self._wait_healthy(timeout) and self.proc.poll() is None:
                return self
            log_tail = _tail(self.log_path)
            self.kill()
            if "address already in use" not in log_tail.rsplit("Starting server", 1)[-1].lower():
                raise RuntimeError(f"{self.server} #{self.number} did not become healthy within {timeout}s:\n{log_tail}")
        raise RuntimeError(f"{self.server} #{self.number} found no free port in {attempts} attempts")

    def command(self) -> list[str]:
        if self.server == "uvicorn":
            return [str(UVICORN), *UVICORN_FLAGS, "--host", HOST, "--port", str(self.port), "--no-access-log",
                    "--log-level", "warning", "messenger.asgi:application"]
        return [str(DAPHNE), "-b", HOST, "-p", str(self.port), "messenger.asgi:application"]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with _opener.open(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was committed must be all that counts."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always exits
                pass

    def log_tail(self) -> str:
        return _tail(self.log_path)


# --- HTTP -----------------------------------------------------------------------------------------
def http(method: str, url: str, body: dict | None = None, *, token: str | None = None, timeout: float = 10):
    """(status, decoded JSON or None) of one request; HTTP errors are answers too, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, (json.loads(raw) if raw else None)


def upload_media(server: ServerProcess, token: str, content: bytes, *, timeout: float = 60) -> dict:
    """`POST media` of `content` as a file (multipart): the upload as the API shows it."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/api/v1/media", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with _opener.open(request, timeout=timeout) as response:
        assert response.status == 201
        return json.loads(response.read())


def register(server: ServerProcess, display_name: str) -> tuple[dict, str]:
    """A new account with one logged-in device: (user payload, token)."""
    phone = f"+1202555{next(_phone_numbers):04d}"
    status, body = http("POST", f"{server.url}/api/v1/auth/register",
                        {"phone_number": phone, "password": PASSWORD, "display_name": display_name})
    assert status == 201, (status, body)
    return body["user"], body["token"]


def login(server: ServerProcess, user: dict, device_name: str) -> str:
    """Another device of the same user: a new token."""
    status, body = http("POST", f"{server.url}/api/v1/auth/login",
                        {"phone_number": user["phone_number"], "password": PASSWORD, "device_name": device_name})
    assert status == 200, (status, body)
    return body["token"]


def direct_conversation(server: ServerProcess, token: str, peer: dict) -> dict:
    """The direct conversation with `peer` (a user as the API shows one), found by phone number: a
    user id names only people one knows already."""
    status, body = http("POST", f"{server.url}/api/v1/conversations",
                        {"kind": "direct", "phone_number": peer["phone_number"]}, token=token)
    assert status in (200, 201), (status, body)
    return body


def save_contact(server: ServerProcess, token: str, person: dict) -> dict:
    """`person` (a user as the API shows one) saved as a contact by phone number: the contact."""
    status, body = http("POST", f"{server.url}/api/v1/contacts", {"phone_number": person["phone_number"]}, token=token)
    assert status == 201, (status, body)
    return body


def group_conversation(server: ServerProcess, token: str, title: str, members: list[dict]) -> dict:
    """A new group of the token's user and `members` (users as the API shows them), whom they save
    as contacts first: a group takes only people one knows."""
    for person in members:
        save_contact(server, token, person)
    status, body = http("POST", f"{server.url}/api/v1/conversations",
                        {"kind": "group", "title": title, "member_ids": [p["id"] for p in members]}, token=token)
    assert status == 201, (status, body)
    return body


def conversation(server: ServerProcess, token: str, conversation_id: int) -> dict:
    status, body = http("GET", f"{server.url}/api/v1/conversations/{conversation_id}", token=token)
    assert status == 200, (status, body)
    return body


def full_history(server: ServerProcess, token: str, conversation_id: int, *, max_messages: int = 10_000) -> list[dict]:
    """Every message of the conversation the user may see, in seq order, paged forward by after_seq."""
    messages: list[dict] = []
    after = 0
    for _ in range(max_messages // 200 + 2):
        page_url = f"{server.url}/api/v1/conversations/{conversation_id}/messages?after_seq={after}&limit=200"
        status, body = http("GET", page_url, token=token)
        assert status == 200, (status, body)
        messages.extend(body["results"])
        if not body["has_more"] or not body["results"]:
            return messages
        after = body["results"][-1]["seq"]
    raise AssertionError(f"history of conversation {conversation_id} has more than {max_messages} messages")


class Browser:
    """A browser logged in to the pages with `user`'s phone number and password: a session of its
    own (its cookies), sent to any server on 127.0.0.1 as a browser sends them behind one address."""

    def __init__(self, server: ServerProcess, user: dict, password: str = PASSWORD):
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPCookieProcessor(self.jar))
        with self.opener.open(f"{server.url}/login/", timeout=10) as response:  # the CSRF cookie
            response.read()
        form = urlencode({"phone_number": user["phone_number"], "password": password,
                          "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        with self.opener.open(urllib.request.Request(f"{server.url}/login/", data=form, method="POST"),
                              timeout=10) as response:
            assert urlparse(response.url).path == "/", f"login failed: ended at {response.url}"
        assert self.cookie("sessionid"), "no session cookie after logging in"

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def post(self, url: str, body: dict) -> tuple[int, dict | None]:
        """A JSON request of a page's script: the session cookie and the CSRF header."""
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json",
            "X-CSRFToken": self.cookie("csrftoken")})
        try:
            with self.opener.open(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, (json.loads(raw) if raw else None)


# --- websocket ------------------------------------------------------------------------------------
def _connect_options() -> dict:
    from websockets.asyncio.client import connect

    # A deep receive queue: with the default (16 frames) unread events stop websockets reading, so
    # closing a socket that was sent many events waits the whole close_timeout for the close frame.
    options = {"open_timeout": 10, "close_timeout": 2, "max_size": 2**20, "max_queue": 4096}
    if "proxy" in inspect.signature(connect).parameters:  # websockets >= 15 reads proxies from the environment
        options["proxy"] = None
    return options


class WsClient:
    """One device on the websocket, speaking the JSON protocol; every wait is bounded."""

    def __init__(self, connection, label: str):
        self.connection = connection
        self.label = label

    @classmethod
    async def connect(cls, server: ServerProcess, token: str, label: str = "client") -> "WsClient":
        from websockets.asyncio.client import connect

        connection = await connect(f"{server.ws_url}/ws/v1/?token={token}", **_connect_options())
        return cls(connection, label)

    @classmethod
    async def connect_page(cls, server: ServerProcess, browser: Browser, label: str = "page") -> "WsClient":
        """The websocket of a chat page open in `browser`: its session cookie, our origin."""
        from websockets.asyncio.client import connect

        connection = await connect(f"{server.ws_url}/ws/v1/", origin=server.url,
                                   additional_headers={"Cookie": f"sessionid={browser.cookie('sessionid')}"},
                                   **_connect_options())
        return cls(connection, label)

    async def ready(self, timeout: float = 5) -> None:
        """Wait until the server has finished connecting this socket (its groups joined, its
        catch-up sent): it answers a frame only after that, and an unknown one with an error."""
        await self.send(type="test.ready?", ref="ready-probe")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            event = await self.receive(timeout=max(0.01, deadline - asyncio.get_running_loop().time()))
            if event["type"] == "error" and event.get("ref") == "ready-probe":
                return

    async def closed_with(self, timeout: float = 5) -> int | None:
        """The close code the server ends the connection with, once every event before it is read."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    async def send(self, **frame) -> None:
        await self.connection.send(json.dumps(frame))

    async def receive(self, timeout: float = 5) -> dict:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def collect(self, event_type: str, count: int, *, timeout: float = 15) -> list[dict]:
        """The next `count` events of `event_type` in arrival order, skipping other types.

        An error event fails at once (it would otherwise surface only as a timeout).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found: list[dict] = []
        while len(found) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.label}: {len(found)} of {count} {event_type} events within {timeout}s")
            try:
                event = await self.receive(timeout=remaining)
            except TimeoutError:
                continue
            if event["type"] == "error":
                raise AssertionError(f"{self.label}: error event while waiting for {event_type}: {event}")
            if event["type"] == event_type:
                found.append(event)
        return found

    async def quiet(self, timeout: float = 0.5, *, event_type: str | None = None) -> list[dict]:
        """Events (of `event_type`, if given) that arrive within `timeout`; [] means silence."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        events = []
        for _ in range(10_000):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                event = await self.receive(timeout=remaining)
            except TimeoutError:
                break
            if event_type is None or event["type"] == event_type:
                events.append(event)
        return events

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.connection.close(), 3)
        except Exception:  # a socket to a killed server may fail to close cleanly; it is gone either way
            pass
