"""Test data for the developer API, made through its services."""

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from developer_api.models import ApiKey, DeveloperApp
from developer_api.services import apps, keys
from storage.models import User
from tests.developer_api.app_schema import AppClient
from tests.factories import UserFactory

ALL_SCOPES = list(ApiKey.SCOPES)
_names = itertools.count(1)


def make_app(owner: User | None = None, **kwargs) -> DeveloperApp:
    return apps.create_app(owner=owner or UserFactory(), name=kwargs.pop("name", f"App {next(_names)}"), **kwargs)


def make_key(app: DeveloperApp, scopes: list[str] | None = None, **kwargs) -> tuple[ApiKey, str]:
    return keys.create_key(app=app, scopes=scopes or ALL_SCOPES, **kwargs)


def app_client(app: DeveloperApp | None = None, scopes: list[str] | None = None) -> tuple[DeveloperApp, AppClient]:
    """An app and a client that calls /developer/v1/ with a fresh key of it."""
    app = app or make_app()
    _, raw = make_key(app, scopes)
    return app, AppClient(raw)


def opted_in_user(app: DeveloperApp, **kwargs) -> User:
    user = UserFactory(**kwargs)
    apps.opt_in(app=app, user=user)
    return user


def text(to: str, body: str = "hello", **extra) -> dict:
    return {"to": to, "type": "text", "text": {"body": body}, **extra}


class Receiver:
    """A real HTTP server on 127.0.0.1 standing in for an app's webhook endpoint.

    It answers the verify-token handshake, records every POST (headers and raw body), and answers
    POSTs with the status codes queued in `responses` (200 once the queue is empty).
    """

    def __init__(self, verify_token: str = "let-me-in"):
        self.verify_token = verify_token
        self.posts: list[dict] = []
        self.handshakes: list[dict] = []
        self.responses: list[int] = []
        # Events this predicate is true of are answered 503, whatever `responses` holds.
        self.refuse = lambda event: False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with receiver.lock:
                    receiver.handshakes.append(query)
                if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == receiver.verify_token:
                    self._answer(200, query.get("hub.challenge", "").encode())
                else:
                    self._answer(403, b"wrong verify token")

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = json.loads(raw)
                with receiver.lock:
                    receiver.posts.append({"headers": dict(self.headers), "raw": raw, "json": event})
                    status = receiver.responses.pop(0) if receiver.responses else 200
                    if receiver.refuse(event):
                        status = 503
                self._answer(status, b"ok")

            def _answer(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def events(self) -> list[dict]:
        with self.lock:
            return [post["json"] for post in self.posts]
