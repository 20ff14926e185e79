"""A webhook receiver for a messenger app, in Python's standard library only.

    MESSENGER_WEBHOOK_SECRET=<signing_secret> MESSENGER_VERIFY_TOKEN=<your verify token> \
        python webhook_receiver.py 8080

It answers messenger's verify-token handshake, checks the X-Hub-Signature-256 of every event
against the raw body (before parsing it), and hands good events to `handle_event`. Put it behind
HTTPS and point your app's webhook at it (docs/developer-api.md). The test suite runs this very
file as a receiver (tests/developer_api/test_webhooks.py).
"""

import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def signature_is_valid(raw_body: bytes, header: str | None, secret: str) -> bool:
    """True if `header` is "sha256=" and the HMAC-SHA256 of the raw body keyed with the secret."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):])  # constant time


def handle_event(event: dict) -> None:
    """Your app's logic. Events may arrive twice (a resend): deduplicate by message or status id.
    Other events may come in time: ignore those you do not know, and accept them (2xx)."""
    if event["event"] == "message":
        message = event["message"]
        if message["type"] == "text":
            what = message["text"]["body"]
        else:  # image, video, audio or document: download it with GET /developer/v1/media/{id}
            media = message[message["type"]]
            what = f"{message['type']} {media['id']} ({media['mime_type']}) {media.get('caption', '')}".rstrip()
        print(f"{message['from_name']} ({message['from']}) wrote: {what}")
    elif event["event"] == "status":
        status = event["status"]
        print(f"message {status['id']} to {status['recipient']} is now {status['status']}")
    elif event["event"] == "message.removed":
        # A moderator took the message down, or its writer deleted it: forget what it said, and do not act on it.
        removed = event["removed"]
        print(f"message {removed['id']} was removed")
    elif event["event"] == "message.edited":
        # Its writer edited a message you had: what it says now (a text, or a media message's caption).
        edited = event["edited"]
        print(f"message {edited['id']} was edited: {edited['text']['body']}")


def make_server(host: str, port: int, *, secret: str, verify_token: str,
                on_event=handle_event) -> ThreadingHTTPServer:
    class WebhookHandler(BaseHTTPRequestHandler):
        def do_GET(self):
            # The handshake when the webhook is set: echo hub.challenge if the verify token is ours.
            query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
            if query.get("hub.mode") == "subscribe" and hmac.compare_digest(query.get("hub.verify_token", ""),
                                                                            verify_token):
                self._reply(200, query.get("hub.challenge", ""))
            else:
                self._reply(403, "verify token mismatch")

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not signature_is_valid(raw, self.headers.get("X-Hub-Signature-256"), secret):
                self._reply(401, "bad signature")
                return
            on_event(json.loads(raw))
            # Answer 2xx quickly; anything else (or no answer within 10 s) is retried later, and
            # later events of the same conversation wait until this one is accepted.
            self._reply(200, "ok")

        def _reply(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), WebhookHandler)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = make_server("0.0.0.0", port, secret=os.environ["MESSENGER_WEBHOOK_SECRET"],
                         verify_token=os.environ["MESSENGER_VERIFY_TOKEN"])
    print(f"listening on port {server.server_address[1]}")
    server.serve_forever()
