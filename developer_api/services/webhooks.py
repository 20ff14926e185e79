"""Webhooks: an app's callback URL hears of users' messages to it, of its messages' status, of
messages it had that a moderator took down or their writer deleted for everyone, and of those it
had that their writer edited.

Each event is a `WebhookDelivery` row, written beside the change it announces (so none is lost to a
crash), and posted by the task worker as JSON signed with `X-Hub-Signature-256: sha256=<HMAC-SHA256
of the raw body, keyed with the app's secret>`. Events of one (app, conversation) form a *lane*:
only the oldest undelivered event of a lane is ever attempted, so event N+1 never arrives before
event N was delivered. A failed attempt is retried with exponential backoff (10 s doubling up to
an hour) until WEBHOOK_RETRY_FOR (24 h) has passed; then that event is given up and the lane
moves on. Every attempt is logged with its status code and latency; operators can resend from the
admin.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from broker import events
from broker.errors import BrokerError, InvalidInput
from developer_api.errors import WebhookVerificationFailed
from developer_api.models import (
    DeveloperApp,
    OutboundMessage,
    WebhookAttempt,
    WebhookDelivery,
)
from developer_api.services import media as app_media
from developer_api.services import replies
from storage.models import Membership, Message, User

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
USER_AGENT = "messenger-webhooks/1"
LEASE = timedelta(minutes=2)  # longer than any attempt can take (the timeout is seconds)
BATCH = 100  # events one task run delivers from a lane before handing over to a fresh task
MAX_VERIFY_TOKEN = 200


def options() -> dict:
    return settings.DEVELOPER_API


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_delay(failed_attempts: int) -> int:
    """Seconds to wait after the n-th failed attempt: BASE, 2 BASE, 4 BASE, ... at most MAX."""
    base, cap = options()["WEBHOOK_BACKOFF_BASE"], options()["WEBHOOK_BACKOFF_MAX"]
    return min(cap, base * 2 ** max(0, min(failed_attempts - 1, 30)))


# --- callback URLs -----------------------------------------------------------------------------
def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_url(url: object, *, field: str = "url") -> str:
    """A callback URL the server may post to: http(s), and no loopback, private or link-local
    address unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES (else an app could make the server probe its
    own network). Checked here and again before every attempt, on the address then connected to."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url is required.", field=field)
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # urllib parses the port (and a bracketed host) only when asked
    except ValueError as exc:
        raise InvalidInput(f"url is not a valid URL: {exc}.", field=field) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an http:// or https:// URL.", field=field)
    if len(url) > 500:
        raise InvalidInput("url is longer than 500 characters.", field=field)
    if parts.username or parts.password:
        raise InvalidInput("url must not carry a user name or password.", field=field)
    _, problem = _resolve(parts.hostname, port or _default_port(parts.scheme))
    if problem:
        raise InvalidInput(problem, field=field)
    return url


def _resolve(host: str, port: int) -> tuple[str | None, str | None]:
    """(the address to connect to, None), or (None, why the host may not be called)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None, f"The host {host!r} cannot be resolved."
    addresses = [info[4][0].split("%")[0] for info in infos]
    if not options()["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"]:
        for address in addresses:
            if not _public(ipaddress.ip_address(address)):
                return None, f"The host {host!r} has a loopback, private or reserved address; callbacks must be public."
    return addresses[0], None


# NAT64 prefixes (RFC 6052's well-known one and RFC 8215's local-use one): a NAT64 gateway turns
# 64:ff9b::a.b.c.d into a.b.c.d, on the gateway's side, which is usually the server's own network.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d, deprecated (RFC 4291)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a callback may reach `ip`. Python counts as global the IPv6 forms that carry an IPv4
    address (NAT64, 6to4, IPv4-compatible) and the deprecated site-local prefix: the IPv4 address
    inside is what they reach, and it must be public too."""
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 4:
        return True
    if ip.is_site_local:
        return False
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and (ip in _NAT64[0] or ip in _IPV4_COMPATIBLE):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64[1]:  # where the IPv4 address sits depends on the local prefix's length
        return False
    return embedded is None or _public(embedded)


class _AttemptDeadline:
    """The attempt's deadline on a connection's socket. A socket timeout bounds one read or write:
    a receiver that answered a line at a time, each within the timeout, could hold an attempt (and
    the lane behind it) for as long as it liked. So before each read and write the timeout becomes
    the time left, and past the deadline they fail as timeouts."""

    deadline: float | None = None  # on the time.monotonic() clock

    def recv_into(self, *args, **kwargs):
        if self.deadline is not None:
            self.settimeout(_time_left(self.deadline))
        return super().recv_into(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        if self.deadline is not None:
            self.settimeout(_time_left(self.deadline))
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_AttemptDeadline, socket.socket):
    pass


class _DeadlineSSLSocket(_AttemptDeadline, ssl.SSLSocket):
    pass


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _connect(address: str, port: int, deadline: float) -> _DeadlineSocket:
    plain = socket.create_connection((address, port), _time_left(deadline))
    timed = _DeadlineSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    timed.settimeout(plain.gettimeout())
    timed.deadline = deadline
    return timed


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever a second DNS lookup says (DNS
    rebinding); the Host header (and TLS name, below) stay the URL's."""

    def __init__(self, *args, address: str, deadline: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.address = address
        self.deadline = deadline

    def connect(self):
        self.sock = _connect(self.address, self.port, self.deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, address: str, deadline: float, **kwargs):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(*args, context=context, **kwargs)
        self.address = address
        self.deadline = deadline

    def connect(self):
        sock = _connect(self.address, self.port, self.deadline)
        try:
            sock.settimeout(_time_left(self.deadline))  # the whole handshake runs under one timeout
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock.deadline = self.deadline


def _request(method: str, url: str, *, body: bytes | None = None, headers: dict | None = None,
             ) -> tuple[int | None, bytes, str]:
    """(status code or None, start of the body, error text). Direct (no proxy: the address checked
    is the address reached), and redirects are not followed (they could lead past the check). The
    exchange has WEBHOOK_TIMEOUT in all, counted from before the name lookup (which itself cannot be
    cut short) to the end of the body."""
    deadline = time.monotonic() + options()["WEBHOOK_TIMEOUT"]
    parts = urlsplit(url)
    address, problem = _resolve(parts.hostname or "", parts.port or _default_port(parts.scheme))
    if problem:
        return None, b"", problem
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, parts.port or _default_port(parts.scheme),
                                  address=address, deadline=deadline)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, target, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = connection.getresponse()
        content = response.read(4096)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, b"", (str(exc) or type(exc).__name__)[:300]
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        return response.status, content, f"HTTP {response.status}"
    return response.status, content, ""


def verify_callback(*, url: str, verify_token: str) -> None:
    """The handshake: GET url?hub.mode=subscribe&hub.verify_token=...&hub.challenge=..., which the
    receiver must answer with 200 and the challenge as the body."""
    challenge = secrets.token_urlsafe(16)
    query = urlencode({"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge})
    status, body, error = _request("GET", url + ("&" if "?" in url else "?") + query)
    if status != 200 or body.decode("utf-8", "replace").strip() != challenge:
        got = error or f"status {status} with a body that is not the challenge"
        raise WebhookVerificationFailed(
            f"The callback did not pass verification ({got}): answer the GET with hub.challenge as the body.",
            field="url",
        )


def set_webhook(*, app: DeveloperApp, url: object, verify_token: object, key=None) -> DeveloperApp:
    """Point the app's webhook at `url` once it passes the verify-token handshake. With the
    request's `key`, it is checked again after the handshake (up to WEBHOOK_TIMEOUT seconds of
    someone else's server): a key revoked meanwhile sets nothing."""
    url = check_url(url)
    if not isinstance(verify_token, str) or not verify_token or len(verify_token) > MAX_VERIFY_TOKEN:
        raise InvalidInput(f"verify_token must be a string of 1 to {MAX_VERIFY_TOKEN} characters.",
                           field="verify_token")
    verify_callback(url=url, verify_token=verify_token)
    with transaction.atomic():
        if key is not None:
            from developer_api.services import keys  # keys imports apps, which imports this module

            keys.recheck(key)
        app.webhook_url = url
        app.webhook_verified_at = timezone.now()
        app.save(update_fields=["webhook_url", "webhook_verified_at"])
    return app


def clear_webhook(*, app: DeveloperApp) -> None:
    """No more webhooks; events not yet delivered are given up."""
    with transaction.atomic():
        DeveloperApp.objects.filter(pk=app.pk).update(webhook_url="", webhook_verified_at=None)
        WebhookDelivery.objects.filter(app=app, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.FAILED, last_error="webhook removed"
        )
    app.webhook_url, app.webhook_verified_at = "", None


def rotate_secret(*, app: DeveloperApp) -> str:
    app.webhook_secret = secrets.token_hex(32)
    app.save(update_fields=["webhook_secret"])
    return app.webhook_secret


def webhook_payload(app: DeveloperApp) -> dict:
    return {
        "url": app.webhook_url or None,
        "verified_at": events.timestamp(app.webhook_verified_at),
        "signing_secret": app.webhook_secret,
    }


# --- events ------------------------------------------------------------------------------------
def _queue(*, app: DeveloperApp, conversation_id: int, event: str, payload: dict, seq: int | None = None) -> None:
    """Write the event for the app's webhook (if it has one) and have the worker post it after commit."""
    if not app.webhook_url:
        return
    body = json.dumps({"object": "messenger_app", "app_id": app.pk, "event": event, **payload},
                      separators=(",", ":"), ensure_ascii=False)
    with transaction.atomic():
        WebhookDelivery.objects.create(app=app, conversation_id=conversation_id, event=event, body=body, seq=seq)
        transaction.on_commit(lambda: schedule_lane(app_id=app.pk, conversation_id=conversation_id))


def message_received(*, app: DeveloperApp, message: Message, sender: User) -> None:
    """A user wrote to the app's bot: text, or a photo, video, voice message or document (with its
    caption), which the app downloads by the media id given."""
    body = {
        "id": f"in_{message.pk}",
        "from": sender.phone_number,
        "from_user_id": sender.pk,
        "from_name": sender.display_name,
    }
    if message.media_id is not None:
        message_type = app_media.TYPE_OF_KIND[message.media.kind]
        body.update({"type": message_type, message_type: app_media.media_object(message.media, caption=message.text)})
    else:
        body.update({"type": "text", "text": {"body": message.text}})
    context = replies.context_of(app=app, message=message)
    if context is not None:  # a reply: the message it quotes
        body["context"] = context
    body["created_at"] = events.timestamp(message.created_at)
    _queue(app=app, conversation_id=message.conversation_id, event=WebhookDelivery.Event.MESSAGE, seq=message.seq,
           payload={"message": body})


TAKEN_DOWN = "The message was taken down by a moderator, or deleted by its sender: not sent."
# What an event of a message taken down keeps of it: who wrote it and when, not what.
KEPT_OF_A_REMOVED_MESSAGE = ("id", "from", "from_user_id", "from_name", "created_at")


def message_taken_down(*, message: Message) -> None:
    """A moderator took down `message`, or its sender deleted it (already without its text and media). Its events keep
    nothing of what it said (an operator's resend, or the retry of one being posted now, sends
    `"type": "removed"`), and those not posted yet are not sent (failed, saying why); the lane moves
    on. Each app whose account is in the conversation and that has, or may have, the message (its
    own, or one whose event was posted or is being posted) is sent `message.removed`, in the same
    lane: after the message's own event."""
    now = timezone.now()
    had_it: set[int] = set()
    deliveries = WebhookDelivery.objects.select_for_update().filter(
        conversation_id=message.conversation_id, seq=message.seq, event=WebhookDelivery.Event.MESSAGE)
    for delivery in deliveries:
        payload = json.loads(delivery.body)
        kept = payload["message"]
        payload["message"] = {**{k: kept[k] for k in KEPT_OF_A_REMOVED_MESSAGE if k in kept}, "type": "removed"}
        delivery.body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        fields = ["body"]
        # Claimed and not yet recorded: a worker is posting it (or crashed after posting it).
        posted = delivery.locked_until is not None
        if delivery.status == WebhookDelivery.Status.DELIVERED or delivery.attempts or posted:
            had_it.add(delivery.app_id)
        # One being posted right now is left to its worker, and stays the head of its lane, so that
        # the removal queued below cannot overtake it; should that attempt fail, its retry is the
        # message without its content.
        in_flight = posted and delivery.locked_until > now
        if delivery.status == WebhookDelivery.Status.PENDING and not in_flight:
            delivery.status, delivery.last_error = WebhookDelivery.Status.FAILED, TAKEN_DOWN
            fields += ["status", "last_error"]
        delivery.save(update_fields=fields)
    bots = Membership.objects.filter(conversation_id=message.conversation_id, user__is_business=True)
    for app in DeveloperApp.objects.filter(bot_id__in=bots.values("user_id")):
        if app.bot_id == message.sender_id:  # the app's own (sent through the API, so it has a record)
            message_id = OutboundMessage.objects.filter(message=message).values_list("public_id", flat=True).first()
        else:  # a user's: only if the app had it; else there is nothing to take back
            message_id = f"in_{message.pk}" if app.pk in had_it else None
        if message_id is None:
            continue
        person = (Membership.objects.filter(conversation_id=message.conversation_id)
                  .exclude(user_id=app.bot_id).values_list("user_id", flat=True).first())
        _queue(app=app, conversation_id=message.conversation_id, event=WebhookDelivery.Event.REMOVED, seq=message.seq,
               payload={"removed": {"id": message_id, "conversation_id": message.conversation_id,
                                    "seq": message.seq, "user_id": person,
                                    "timestamp": events.timestamp(now)}})


def message_edited(*, message: Message) -> None:
    """A user edited `message` (already with its new text: a text, or a media message's caption).
    Its events not yet posted, and an operator's resend, carry the new text. Each app that had it
    (one whose event was posted or is being posted to it) is sent `message.edited` with the new
    text, in the same lane: after the message's own event. Only users edit, and only their own
    messages: an app's own are never edited."""
    had_it: set[int] = set()
    deliveries = WebhookDelivery.objects.select_for_update().filter(
        conversation_id=message.conversation_id, seq=message.seq, event=WebhookDelivery.Event.MESSAGE)
    for delivery in deliveries:
        payload = json.loads(delivery.body)
        _with_text(payload["message"], message.text)
        delivery.body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        delivery.save(update_fields=["body"])
        # Posted, or claimed and not yet recorded: a worker is posting it (or crashed after posting it).
        if delivery.status == WebhookDelivery.Status.DELIVERED or delivery.attempts or delivery.locked_until is not None:
            had_it.add(delivery.app_id)
    bots = Membership.objects.filter(conversation_id=message.conversation_id, user__is_business=True)
    for app in DeveloperApp.objects.filter(pk__in=had_it, bot_id__in=bots.values("user_id")):
        _queue(app=app, conversation_id=message.conversation_id, event=WebhookDelivery.Event.EDITED, seq=message.seq,
               payload={"edited": {"id": f"in_{message.pk}", "conversation_id": message.conversation_id,
                                   "seq": message.seq, "user_id": message.sender_id,
                                   "text": {"body": message.text},
                                   "timestamp": events.timestamp(message.edited_at)}})


def _with_text(body: dict, text: str) -> None:
    """A message event's `message`, given the message's new text: a text's body, or a media
    message's caption (none when empty, as `message_received` writes it)."""
    if body.get("type") == "text":
        body["text"] = {"body": text}
    elif isinstance(body.get(body.get("type")), dict):
        media = body[body["type"]]
        media.pop("caption", None)
        if text:
            media["caption"] = text


def status_changed(*, outbound: OutboundMessage, status: str) -> None:
    """One of the app's messages is now delivered, read or failed."""
    status_body = {
        "id": outbound.public_id,
        "recipient": outbound.to,
        "status": status,
        "timestamp": events.timestamp(timezone.now()),
    }
    if status == "failed":
        status_body["error"] = {"code": outbound.error_code, "reason": outbound.error_reason}
    _queue(app=outbound.app, conversation_id=outbound.conversation_id, event=WebhookDelivery.Event.STATUS,
           payload={"status": status_body})


def schedule_lane(*, app_id: int, conversation_id: int, run_after: datetime | None = None) -> None:
    """Ask the task worker to deliver the lane (at `run_after`, if the task backend can defer)."""
    from developer_api import tasks  # tasks import this module

    try:
        tasks.enqueue_lane(app_id=app_id, conversation_id=conversation_id, run_after=run_after)
    except Exception:  # the events are stored; `manage.py deliver_webhooks` or the next event picks them up
        logger.exception("could not enqueue webhook delivery for app %s conversation %s", app_id, conversation_id)


# --- delivery ----------------------------------------------------------------------------------
def _due_now(deliveries) -> None:
    """Pending and due at once, with a fresh WEBHOOK_RETRY_FOR of retries."""
    now = timezone.now()
    deliveries.update(status=WebhookDelivery.Status.PENDING, next_attempt_at=now, retry_started_at=now,
                      locked_until=None)


def resume(*, apps: list[DeveloperApp]) -> None:
    """The apps are back in service (a suspended app's webhook is not called: what people write to
    it waits, in order): their waiting events go out, with a fresh WEBHOOK_RETRY_FOR of retries
    (their wait was no failure of the app's), once the caller's transaction commits."""
    pending = WebhookDelivery.objects.filter(app__in=apps, status=WebhookDelivery.Status.PENDING)
    _due_now(pending)
    lanes = list(pending.values_list("app_id", "conversation_id").distinct())
    transaction.on_commit(lambda: [schedule_lane(app_id=a, conversation_id=c) for a, c in lanes])


def deliver_lane(*, app_id: int, conversation_id: int, now: datetime | None = None) -> int:
    """Post the lane's due events in order, stopping at the first that fails or is not yet due.

    Returns how many were delivered. Safe to run in several workers at once: each event is
    claimed with a conditional UPDATE before it is posted (and its outcome recorded only while that
    claim holds: `attempt`), and only a lane's oldest pending event is ever attempted.
    """
    app = DeveloperApp.objects.select_related("owner", "bot").filter(pk=app_id).first()
    if app is None or not app.in_service:
        return 0  # suspended: the lane waits for `resume`
    delivered = 0
    lane = WebhookDelivery.objects.filter(app_id=app_id, conversation_id=conversation_id,
                                          status=WebhookDelivery.Status.PENDING)
    for _ in range(BATCH):
        moment = now or timezone.now()
        head = lane.order_by("id").first()
        if head is None or head.next_attempt_at > moment:
            return delivered  # empty, or waiting for its retry (a task is scheduled for then)
        claimed = WebhookDelivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=moment), pk=head.pk,
            status=WebhookDelivery.Status.PENDING,
        ).update(locked_until=moment + LEASE)
        if not claimed:
            return delivered  # another worker is posting it and will carry on with the lane
        head.locked_until = moment + LEASE  # the claim: attempt() records its outcome only while it holds
        if attempt(delivery=head, now=moment):
            delivered += 1
        elif head.status == WebhookDelivery.Status.PENDING:
            return delivered  # its retry is scheduled; the events behind it wait
    schedule_lane(app_id=app_id, conversation_id=conversation_id)  # more to do: in a fresh task
    return delivered


def attempt(*, delivery: WebhookDelivery, now: datetime | None = None) -> bool:
    """Post one event once, log the attempt, and record success or schedule the retry.

    `delivery` is claimed (deliver_lane): its `locked_until` is the lease taken. The post takes up
    to WEBHOOK_TIMEOUT, during which others may write the row: an operator's resend and an app's
    reinstatement (`_due_now`: due at once, unlocked), a take-down or an edit (the body; a take-down
    also gives up one not being posted, or whose lease ran out), the webhook's removal (gives up
    what is pending), the app's deletion (the row goes). So the outcome is written only if the row
    is still as claimed (pending, under this lease), read again under a row lock; else what was done
    meanwhile stands, and the attempt only counts and is logged. The body is never written here.
    """
    now = now or timezone.now()
    lease = delivery.locked_until
    app = DeveloperApp.objects.select_related("bot").get(pk=delivery.app_id)
    body = delivery.body.encode()
    started = time.monotonic()
    if not app.webhook_url:
        status_code, error = None, "the app has no webhook"
    else:
        status_code, _, error = _request("POST", app.webhook_url, body=body, headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(app.webhook_secret, body),
            "X-Messenger-Event": delivery.event,
            "X-Messenger-Delivery": str(delivery.pk),
            "X-Messenger-Attempt": str(delivery.attempts + 1),
        })
    latency_ms = int((time.monotonic() - started) * 1000)
    ok = not error and status_code is not None
    with transaction.atomic():
        row = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if row is None:
            return ok  # the app was deleted meanwhile, and its events with it: nothing to record
        WebhookAttempt.objects.create(delivery=row, attempted_at=now, url=app.webhook_url[:500] or "-",
                                      status_code=status_code, latency_ms=latency_ms, error=error[:300], ok=ok)
        row.attempts += 1
        recorded = row.status == WebhookDelivery.Status.PENDING and lease is not None and row.locked_until == lease
        if recorded:
            _record_outcome(row, app=app, ok=ok, error=error, now=now)
            row.save(update_fields=["attempts", "locked_until", "status", "delivered_at", "last_error",
                                    "next_attempt_at"])
        else:
            row.save(update_fields=["attempts"])
    for field in row._meta.concrete_fields:  # the caller (deliver_lane) goes by the row as it now is
        setattr(delivery, field.attname, getattr(row, field.attname))
    if ok and delivery.event == WebhookDelivery.Event.MESSAGE and delivery.seq:
        _delivered_to_app(app=app, delivery=delivery)  # the app has it, whatever its row says now
    if recorded and not ok and delivery.status == WebhookDelivery.Status.PENDING:
        # (Had the row changed meanwhile, whoever changed it scheduled what it needs: a resend its lane.)
        schedule_lane(app_id=app.pk, conversation_id=delivery.conversation_id, run_after=delivery.next_attempt_at)
    return ok


def _record_outcome(row: WebhookDelivery, *, app: DeveloperApp, ok: bool, error: str, now: datetime) -> None:
    """The claimed row after its attempt: delivered, given up (past WEBHOOK_RETRY_FOR, or there is no
    webhook), or due again after the backoff; unlocked."""
    row.locked_until = None
    if ok:
        row.status = WebhookDelivery.Status.DELIVERED
        row.delivered_at = now
        row.last_error = ""
    elif (now - row.retry_started_at).total_seconds() >= options()["WEBHOOK_RETRY_FOR"] or not app.webhook_url:
        row.status = WebhookDelivery.Status.FAILED  # given up; the lane moves on
        row.last_error = error[:300]
    else:
        row.next_attempt_at = now + timedelta(seconds=backoff_delay(row.attempts))
        row.last_error = error[:300]


def _delivered_to_app(*, app: DeveloperApp, delivery: WebhookDelivery) -> None:
    """The app has the user's message: the user sees it delivered (two ticks), as from a person."""
    from broker.services import receipts

    try:
        receipts.mark_delivered(user=app.bot, conversation_id=delivery.conversation_id, seq=delivery.seq)
    except BrokerError:  # the conversation is gone, or the bot left it: nothing to mark
        pass


def deliver_due(*, now: datetime | None = None) -> int:
    """Deliver every lane with an event due now: the sweep `manage.py deliver_webhooks` runs, which
    also recovers events whose task was lost."""
    moment = now or timezone.now()
    lanes = (WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=moment)
             .values_list("app_id", "conversation_id").distinct())
    return sum(deliver_lane(app_id=a, conversation_id=c, now=now) for a, c in list(lanes))


def resend(*, delivery: WebhookDelivery, actor: User) -> None:
    """An operator sends an event again (a failed one, or a delivered one the app lost)."""
    from developer_api.services import audit

    with transaction.atomic():
        _due_now(WebhookDelivery.objects.filter(pk=delivery.pk))
        audit.record(actor=actor, action="webhook_resent", target=delivery, detail={"app": delivery.app_id})
        transaction.on_commit(lambda: schedule_lane(app_id=delivery.app_id, conversation_id=delivery.conversation_id))
