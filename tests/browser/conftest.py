"""End-to-end browser tests: headless Chromium (Debian's, driven by Playwright) against a real server
process, uvicorn with the flags `make run` gives it.

The server is a separate process serving the ASGI application (HTTP and websockets) on a free
127.0.0.1 port, with its own throwaway SQLite database, so it can be killed and started again on
the same port and database to cut every websocket. Playwright's sync API is started per module and
stopped after it: while it runs, its event loop counts as running in this thread, which would break
Django ORM calls and async tests elsewhere in the same pytest run.

Without /usr/bin/chromium or the playwright package these tests skip with the reason, unless
MESSENGER_REQUIRE_SERVICES=1 (CI), where that is a failure. MESSENGER_SCREENSHOTS=<dir> keeps the
screenshots there (docs/screenshots/ via `make screenshots`); otherwise they go to a temp folder.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.live_server import UVICORN_FLAGS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MESSENGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    return None


@pytest.hookimpl(trylast=True)  # after `-m "not browser"` has deselected what it will
def pytest_collection_modifyitems(config, items):
    reason = _missing_browser()
    if reason is None:
        return
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if not browser_items:
        return
    if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(f"browser tests cannot run: {reason} (MESSENGER_REQUIRE_SERVICES=1 makes this a failure)")
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving messenger.asgi on 127.0.0.1:<port>, as `make run` does; `restart()` keeps the port
    and database."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = open(data_dir / "server.log", "ab")
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}},
            "DJANGO_SETTINGS_MODULE": "messenger.settings",
            "MESSENGER_DATA_DIR": str(data_dir),
            "SQLITE_PATH": str(data_dir / "db.sqlite3"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": self.url,
            "MESSENGER_SEND_RATE": "1000",
            # Every person here registers and logs in from 127.0.0.1, and the server lives for the
            # whole session: at the defaults (20 registrations an hour per address) the suite's
            # 21st person was refused. tests/broker covers those limits.
            "MESSENGER_LOGIN_RATE_PER_IP": "100000",
            "MESSENGER_REGISTER_RATE_PER_IP": "100000",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    def migrate(self) -> None:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True, stdout=self.log, stderr=subprocess.STDOUT, timeout=120)

    def manage(self, *args: str) -> None:
        """Run a management command against the server's database (e.g. to age some messages)."""
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                       stdout=self.log, stderr=subprocess.STDOUT, timeout=60)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *UVICORN_FLAGS, "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning", "messenger.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.data_dir / 'server.log'}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError("the server did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # a crash, not a goodbye: sockets just drop
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- a REST client with a device token, for the other side of a conversation ---------------
    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict | None:
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return json.loads(raw) if raw else None


@pytest.fixture(scope="session")
def live_server_process():
    if _missing_browser():
        pytest.skip(_missing_browser())
    data_dir = Path(tempfile.mkdtemp(prefix="messenger-browser-"))
    server = LiveServer(data_dir)
    server.migrate()
    server.start()
    yield server
    server.stop()
    server.log.close()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(live_server_process):
    # A test that killed the server and failed half-way must not leave the next one without it.
    if live_server_process.process is None or live_server_process.process.poll() is not None:
        live_server_process.start()
    return live_server_process


@pytest.fixture
def shot(tmp_path):
    folder = Path(os.environ.get("MESSENGER_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take


_numbers = iter(range(1000, 10000))


def new_phone_number() -> str:
    # Fictional +1 202 555 01xx numbers differ per run only in the suffix; the database is fresh.
    return f"+1202555{next(_numbers):04d}"


class Person:
    """Someone using messenger in their own browser context."""

    def __init__(self, browser, server: LiveServer, name: str, *, viewport=None):
        self.name = name
        self.phone = new_phone_number()
        self.server = server
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, locale="en-GB",
                                           timezone_id="UTC")
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self._token = None

    def register(self) -> "Person":
        page = self.page
        page.goto(self.server.url + "/register/")
        page.get_by_label("Phone number").fill(self.phone)
        page.get_by_label("Display name").fill(self.name)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url(self.server.url + "/")
        self.wait_until_connected()
        return self

    def login(self) -> "Person":
        page = self.page
        page.goto(self.server.url + "/login/")
        page.get_by_label("Phone number").fill(self.phone)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(self.server.url + "/")
        self.wait_until_connected()
        return self

    def wait_until_connected(self) -> None:
        """The page's websocket is open. (The banner is hidden in the page as served, before its
        socket is even asked for: waiting for it to be hidden waited for nothing, and the banner
        shown and hidden after that moved the chat list under a test's pointer.)"""
        self.page.locator("body[data-connection='open']").wait_for(state="attached", timeout=20_000)

    def register_by_api(self) -> "Person":
        self.server.api("POST", "auth/register", {"phone_number": self.phone, "password": PASSWORD, "display_name": self.name})
        return self

    def token(self) -> str:
        """A device token for the same account, to act through the REST API as another device."""
        if self._token is None:
            self._token = self.server.api("POST", "auth/login", {"phone_number": self.phone, "password": PASSWORD})["token"]
        return self._token

    def close(self):
        self.context.close()


@pytest.fixture
def people(chromium, server):
    made = []

    def make(name: str, *, register: bool = True, viewport=None) -> Person:
        person = Person(chromium, server, name, viewport=viewport)
        made.append(person)
        return person.register() if register else person

    yield make
    for person in made:
        with contextlib.suppress(Exception):
            person.close()
