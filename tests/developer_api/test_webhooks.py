"""Webhooks against real HTTP receivers on 127.0.0.1: the verify-token handshake, signatures, the
events (users' messages, delivered/read/failed statuses), retries with exponential backoff for at
least 24 hours, order within a conversation, the attempt log, and the task worker."""

import hashlib
import hmac
import importlib.util
import json
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from broker import events
from broker.services import media as broker_media
from broker.services import people, receipts
from broker.services.send import send_message as user_sends
from developer_api.models import DeveloperApp, WebhookAttempt, WebhookDelivery
from developer_api.services import apps, spam, webhooks
from storage.models import Membership
from tests import media_samples as samples
from tests.developer_api.helpers import app_client, make_app, opted_in_user, text
from tests.factories import UserFactory, direct_conversation, sent_message

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"


def with_webhook(receiver, app: DeveloperApp | None = None) -> DeveloperApp:
    app = app or make_app()
    webhooks.set_webhook(app=app, url=receiver.url, verify_token=receiver.verify_token)
    return app


def user_writes(app, user, body, on_commit):
    """`user` messages the app's bot; the broker's after-commit signals run."""
    with on_commit(execute=True):
        return sent_message(user, direct_conversation(user, app.bot), body)


def valid_signature(post, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), post["raw"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(post["headers"]["X-Hub-Signature-256"], expected)


# --- setting it up -----------------------------------------------------------------------------
def test_setting_a_webhook_passes_the_verify_token_handshake(receiver):
    app, client = app_client()

    response = client.put("/developer/v1/webhook", {"url": receiver.url, "verify_token": receiver.verify_token})

    assert response.status_code == 200
    body = response.json()
    assert body["url"] == receiver.url and body["verified_at"] and len(body["signing_secret"]) == 64
    [handshake] = receiver.handshakes
    assert handshake["hub.mode"] == "subscribe" and handshake["hub.verify_token"] == receiver.verify_token
    assert client.get("/developer/v1/webhook").json() == body


def test_a_key_revoked_during_the_handshake_sets_no_webhook(receiver, monkeypatch):
    from developer_api.models import ApiKey
    from developer_api.services import keys

    app, client = app_client()
    handshake = webhooks.verify_callback

    def slow_receiver_meanwhile_the_owner_revokes_the_key(**kwargs):
        handshake(**kwargs)  # up to WEBHOOK_TIMEOUT seconds of someone else's server
        keys.revoke_key(key=ApiKey.objects.get(app=app))

    monkeypatch.setattr(webhooks, "verify_callback", slow_receiver_meanwhile_the_owner_revokes_the_key)
    response = client.put("/developer/v1/webhook", {"url": receiver.url, "verify_token": receiver.verify_token})

    assert response.status_code == 401
    app.refresh_from_db()
    assert app.webhook_url == ""


def test_a_callback_that_fails_the_handshake_is_not_set(receiver):
    app, client = app_client()

    response = client.put("/developer/v1/webhook", {"url": receiver.url, "verify_token": "wrong"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_verification_failed"
    assert response.json()["error"]["field"] == "url"
    app.refresh_from_db()
    assert app.webhook_url == ""


def test_owners_set_the_webhook_through_the_client_api_too(receiver):
    from tests.factories import api_user

    owner, client = api_user()
    app = make_app(owner)

    response = client.put(f"/api/v1/developer/apps/{app.pk}/webhook",
                          {"url": receiver.url, "verify_token": receiver.verify_token})

    assert response.status_code == 200 and response.json()["url"] == receiver.url
    assert client.delete(f"/api/v1/developer/apps/{app.pk}/webhook").status_code == 204
    assert client.get(f"/api/v1/developer/apps/{app.pk}/webhook").json()["url"] is None


def test_the_owner_makes_a_new_signing_secret(receiver, django_capture_on_commit_callbacks):
    from tests.factories import api_user

    owner, client = api_user()
    app = with_webhook(receiver, make_app(owner))
    old = app.webhook_secret

    response = client.post(f"/api/v1/developer/apps/{app.pk}/webhook/secret")

    new = response.json()["signing_secret"]
    assert response.status_code == 200 and new != old
    user_writes(app, UserFactory(), "signed anew", django_capture_on_commit_callbacks)
    webhooks.deliver_due()
    assert valid_signature(receiver.posts[0], new) and not valid_signature(receiver.posts[0], old)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://[::1]/hook",
                                 "http://169.254.169.254/latest/meta-data", "ftp://example.com/hook",
                                 "http://user:pw@example.com/hook"])
def test_callbacks_into_the_servers_own_network_are_refused(url):
    _, client = app_client()

    response = client.put("/developer/v1/webhook", {"url": url, "verify_token": "x"})

    assert response.status_code == 400 and response.json()["error"]["field"] == "url"


# IPv6 addresses that carry an IPv4 address a gateway or the host's own stack would reach: NAT64
# (RFC 6052, and RFC 8215's local-use prefix), 6to4, IPv4-compatible; and the deprecated site-local
# prefix, still routed inside some networks. Python counts them all global.
@pytest.mark.parametrize("url", ["http://[64:ff9b::a9fe:a9fe]/latest/meta-data", "http://[64:ff9b::7f00:1]/hook",
                                 "http://[64:ff9b:1::a00:1]/hook", "http://[2002:a00:1::1]/hook",
                                 "http://[::a9fe:a9fe]/hook", "http://[fec0::1]/hook"])
def test_ipv6_addresses_leading_into_the_servers_own_network_are_refused(url):
    _, client = app_client()

    response = client.put("/developer/v1/webhook", {"url": url, "verify_token": "x"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and response.json()["error"]["field"] == "url"
    assert webhooks._request("GET", url)[2].startswith("The host")  # and checked again at each attempt


MALFORMED_URLS = ["http://example.com:abc/hook", "http://example.com:99999/hook", "http://[::1/hook",
                  "http://[zz]/hook"]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_a_malformed_callback_url_is_the_apps_error(url):
    from tests.factories import api_user

    owner, owner_client = api_user()
    app, key_client = app_client(make_app(owner))

    by_key = key_client.put("/developer/v1/webhook", {"url": url, "verify_token": "x"})
    by_owner = owner_client.put(f"/api/v1/developer/apps/{app.pk}/webhook", {"url": url, "verify_token": "x"})

    for response in (by_key, by_owner):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid" and response.json()["error"]["field"] == "url"
    app.refresh_from_db()
    assert app.webhook_url == ""


def test_the_address_checked_is_the_address_connected_to(monkeypatch):
    import socket

    real_lookup, real_connect = socket.getaddrinfo, socket.create_connection
    lookups, connected = iter(["93.184.216.34", "127.0.0.1"]), []  # a rebinding DNS: public, then loopback

    def lookup(host, *args, **kwargs):
        if host != "hooks.example":
            return real_lookup(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(lookups), 80))]

    def connect(address, *args, **kwargs):
        if address[0] in ("93.184.216.34", "127.0.0.1"):
            connected.append(address[0])
            raise ConnectionRefusedError("not really")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "create_connection", connect)

    status, _, error = webhooks._request("POST", "http://hooks.example/hook", body=b"{}")

    assert status is None and "not really" in error
    assert connected == ["93.184.216.34"]  # one lookup, checked, and that address used


def test_redirects_are_not_followed(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    receiver.responses = [302]
    user_writes(app, UserFactory(), "x", django_capture_on_commit_callbacks)

    webhooks.deliver_due()

    assert WebhookAttempt.objects.get().status_code == 302 and WebhookDelivery.objects.get().status == "pending"


# --- events ------------------------------------------------------------------------------------
def test_a_users_message_is_posted_signed(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user = UserFactory(display_name="Ada")

    message = user_writes(app, user, "Is my order on its way?", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due() == 1

    [post] = receiver.posts
    assert valid_signature(post, app.webhook_secret)
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["X-Messenger-Event"] == "message"
    assert post["json"] == {
        "object": "messenger_app", "app_id": app.pk, "event": "message",
        "message": {
            "id": f"in_{message.pk}", "from": user.phone_number, "from_user_id": user.pk, "from_name": "Ada",
            "type": "text", "text": {"body": "Is my order on its way?"},
            "created_at": post["json"]["message"]["created_at"],
        },
    }
    # The app has it: the user sees it delivered, as from a person.
    assert Membership.objects.get(user=app.bot, conversation_id=message.conversation_id).delivered_seq == message.seq


def test_a_tampered_body_does_not_verify(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user_writes(app, UserFactory(), "hi", django_capture_on_commit_callbacks)
    webhooks.deliver_due()
    [post] = receiver.posts

    tampered = {**post, "raw": post["raw"].replace(b"hi", b"yo")}

    assert valid_signature(post, app.webhook_secret)
    assert not valid_signature(tampered, app.webhook_secret)
    assert not valid_signature(post, "another secret")


def test_status_changes_of_the_apps_messages_are_posted(receiver, django_capture_on_commit_callbacks):
    app, client = app_client(with_webhook(receiver))
    user = opted_in_user(app)
    with django_capture_on_commit_callbacks(execute=True):
        sent_id = client.post("/developer/v1/messages", text(user.phone_number)).json()["messages"][0]["id"]
    message = app.bot.memberships.get().conversation.messages.get()

    with django_capture_on_commit_callbacks(execute=True):
        receipts.mark_delivered(user=user, conversation_id=message.conversation_id, seq=message.seq)
        receipts.mark_delivered(user=user, conversation_id=message.conversation_id, seq=message.seq)  # no change
    with django_capture_on_commit_callbacks(execute=True):
        receipts.mark_read(user=user, conversation_id=message.conversation_id, seq=message.seq)
    webhooks.deliver_due()

    statuses = [(e["status"]["id"], e["status"]["status"]) for e in receiver.events()]
    assert statuses == [(sent_id, "delivered"), (sent_id, "read")]
    assert receiver.events()[0]["status"]["recipient"] == user.phone_number


def test_a_failed_send_is_posted_as_a_failed_status(receiver, django_capture_on_commit_callbacks):
    app, client = app_client(with_webhook(receiver))
    user = opted_in_user(app)
    people.block_user(blocker=user, user_id=app.bot_id)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/developer/v1/messages", text(user.phone_number))
    webhooks.deliver_due()

    [event] = receiver.events()
    assert event["status"]["status"] == "failed" and event["status"]["error"]["code"] == "recipient_unavailable"


def test_apps_without_a_webhook_get_no_deliveries(django_capture_on_commit_callbacks):
    app = make_app()

    user_writes(app, UserFactory(), "hello?", django_capture_on_commit_callbacks)

    assert not WebhookDelivery.objects.exists()


def test_messages_between_people_cost_no_webhook_work(django_capture_on_commit_callbacks):
    alice, bob = UserFactory(), UserFactory()
    make_app()

    with django_capture_on_commit_callbacks(execute=True):
        sent_message(alice, direct_conversation(alice, bob), "hi")

    assert not WebhookDelivery.objects.exists()


# --- retries and order -------------------------------------------------------------------------
def test_a_failed_delivery_is_retried_with_backoff_and_logged(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user_writes(app, UserFactory(), "one", django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    receiver.responses = [500, 502]
    start = delivery.next_attempt_at

    webhooks.deliver_due(now=start)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at == start + timedelta(seconds=10)
    assert webhooks.deliver_due(now=start + timedelta(seconds=9)) == 0  # not due yet: not attempted
    webhooks.deliver_due(now=start + timedelta(seconds=10))
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == start + timedelta(seconds=30)  # then 20 s more
    assert webhooks.deliver_due(now=start + timedelta(seconds=30)) == 1

    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 3
    log = list(WebhookAttempt.objects.filter(delivery=delivery))
    assert [(a.status_code, a.ok) for a in log] == [(500, False), (502, False), (200, True)]
    assert all(a.latency_ms >= 0 and a.url == receiver.url for a in log)
    assert len(receiver.posts) == 3 and {p["raw"] for p in receiver.posts} == {receiver.posts[0]["raw"]}
    assert [p["headers"]["X-Messenger-Attempt"] for p in receiver.posts] == ["1", "2", "3"]


def test_retries_go_on_for_at_least_a_day_then_the_event_is_given_up(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user = UserFactory()
    user_writes(app, user, "first", django_capture_on_commit_callbacks)
    user_writes(app, user, "second", django_capture_on_commit_callbacks)
    receiver.refuse = lambda event: event["message"]["text"]["body"] == "first"
    first = WebhookDelivery.objects.order_by("id").first()
    started = first.retry_started_at

    moments = []
    for _ in range(100):
        first.refresh_from_db()
        if first.status != "pending":
            break
        moments.append(first.next_attempt_at)
        webhooks.deliver_due(now=first.next_attempt_at)

    first.refresh_from_db()
    assert first.status == "failed"
    gaps = [(b - a).total_seconds() for a, b in zip(moments, moments[1:])]
    assert gaps[:5] == [10, 20, 40, 80, 160] and max(gaps) == 3600  # exponential, capped at an hour
    assert moments[-1] - started >= timedelta(hours=24)  # the last try came after a whole day
    # Given up, the event no longer holds the conversation back.
    bodies = [e["message"]["text"]["body"] for e in receiver.events()]
    assert bodies[-1] == "second" and bodies.count("second") == 1


def trickling_receiver(total_seconds: float, step: float) -> tuple[socket.socket, str]:
    """A receiver that answers 200, but one header line every `step` seconds for `total_seconds`:
    each read is quick, the answer is not."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # the test closed the server
                return
            try:
                conn.recv(65536)
                chunks = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"]
                chunks += [b"X-Pad: a\r\n"] * int(total_seconds / step) + [b"\r\nok"]
                for chunk in chunks:
                    conn.sendall(chunk)
                    time.sleep(step)
            except OSError:  # the server hung up on it
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def test_an_answer_slower_than_the_timeout_is_a_failed_attempt_even_if_it_trickles(developer_settings):
    developer_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True, WEBHOOK_TIMEOUT=1)
    # The answer trickles for 12 s; the attempt must end at the 1 s deadline. The bounds below leave
    # a loaded machine seconds of slack (the attempt also writes to the database) and still fail an
    # attempt that waits for the whole answer.
    server, url = trickling_receiver(total_seconds=12, step=0.25)
    app = make_app()
    DeveloperApp.objects.filter(pk=app.pk).update(webhook_url=url, webhook_verified_at=timezone.now())
    delivery = WebhookDelivery.objects.create(app=app, conversation_id=0, event=WebhookDelivery.Event.MESSAGE,
                                              body="{}")
    started = time.monotonic()

    try:
        delivered = webhooks.deliver_lane(app_id=app.pk, conversation_id=0)
    finally:
        server.close()

    assert time.monotonic() - started < 6
    delivery.refresh_from_db()
    [logged] = WebhookAttempt.objects.filter(delivery=delivery)
    assert delivered == 0 and not logged.ok and logged.status_code is None and "timed out" in logged.error
    assert logged.latency_ms < 6000
    assert delivery.status == "pending" and delivery.next_attempt_at == logged.attempted_at + timedelta(seconds=10)


def test_events_of_a_conversation_arrive_in_order_never_overtaking(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user = UserFactory()
    for body in ("1", "2", "3"):
        user_writes(app, user, body, django_capture_on_commit_callbacks)
    receiver.responses = [503, 503]
    moment = timezone.now()

    for step in range(4):  # retries as time passes
        webhooks.deliver_due(now=moment + timedelta(hours=step))

    bodies = [e["message"]["text"]["body"] for e in receiver.events()]
    assert bodies == ["1", "1", "1", "2", "3"]  # "2" waited until "1" was accepted


def test_a_stuck_conversation_does_not_hold_up_another(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    stuck, fine = UserFactory(display_name="Stuck"), UserFactory(display_name="Fine")
    user_writes(app, stuck, "a", django_capture_on_commit_callbacks)
    user_writes(app, fine, "b", django_capture_on_commit_callbacks)
    user_writes(app, stuck, "c", django_capture_on_commit_callbacks)
    receiver.refuse = lambda event: event["message"]["from_name"] == "Stuck"

    webhooks.deliver_due()

    delivered = WebhookDelivery.objects.filter(status="delivered")
    assert [json.loads(d.body)["message"]["text"]["body"] for d in delivered] == ["b"]
    assert [e["message"]["text"]["body"] for e in receiver.events()] == ["a", "b"]  # "c" waits behind "a"


def test_two_workers_on_one_conversation_still_keep_the_order(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    user = UserFactory()
    for body in ("1", "2", "3", "4"):
        user_writes(app, user, body, django_capture_on_commit_callbacks)
    conversation_id = WebhookDelivery.objects.first().conversation_id
    head = WebhookDelivery.objects.order_by("id").first()
    # Another worker holds the oldest event right now (it is posting it): this one must not skip it.
    WebhookDelivery.objects.filter(pk=head.pk).update(locked_until=timezone.now() + timedelta(minutes=1))

    assert webhooks.deliver_lane(app_id=app.pk, conversation_id=conversation_id) == 0
    assert receiver.posts == []

    WebhookDelivery.objects.filter(pk=head.pk).update(locked_until=None)  # its hold ran out
    assert webhooks.deliver_lane(app_id=app.pk, conversation_id=conversation_id) == 4
    assert [e["message"]["text"]["body"] for e in receiver.events()] == ["1", "2", "3", "4"]


def test_an_operator_resends_an_event(receiver, django_capture_on_commit_callbacks, admin_user):
    app = with_webhook(receiver)
    user_writes(app, UserFactory(), "again please", django_capture_on_commit_callbacks)
    webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        webhooks.resend(delivery=delivery, actor=admin_user)
    webhooks.deliver_due()

    assert len(receiver.posts) == 2 and receiver.posts[0]["raw"] == receiver.posts[1]["raw"]
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


def test_removing_the_webhook_gives_up_what_is_pending(receiver, django_capture_on_commit_callbacks):
    app = with_webhook(receiver)
    receiver.responses = [500]
    user_writes(app, UserFactory(), "x", django_capture_on_commit_callbacks)
    webhooks.deliver_due()

    webhooks.clear_webhook(app=app)

    assert WebhookDelivery.objects.get().status == "failed"


# --- changes made while an event is being posted -----------------------------------------------
def meanwhile(monkeypatch, change):
    """Run `change` once, while the worker posts its first event: the receiver has answered, and the
    worker has yet to record the outcome (as if the receiver took its time, up to the timeout)."""
    post = webhooks._request
    done = []

    def posting(method, url, **kwargs):
        answer = post(method, url, **kwargs)
        if method == "POST" and not done:
            done.append(change())
        return answer

    monkeypatch.setattr(webhooks, "_request", posting)
    return done


def test_an_operators_resend_made_while_the_event_is_being_posted_is_not_undone(
        receiver, monkeypatch, django_capture_on_commit_callbacks, admin_user):
    """A day of retries is nearly up when the developer fixes their receiver and asks the operator to
    send the event again. The worker is making what would have been its last attempt, which fails:
    the operator's resend stands (due at once, a fresh day of retries) and the event goes out, where
    the worker's record of its attempt would have given it up."""
    app = with_webhook(receiver)
    user_writes(app, UserFactory(), "my order never came", django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(retry_started_at=timezone.now() - timedelta(hours=24, minutes=1))
    receiver.responses = [503]
    meanwhile(monkeypatch, lambda: webhooks.resend(delivery=delivery, actor=admin_user))

    assert webhooks.deliver_due() == 0
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at <= timezone.now()
    assert delivery.retry_started_at > timezone.now() - timedelta(minutes=1)
    assert webhooks.deliver_due() == 1

    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2 and delivery.last_error == ""
    assert [(a.status_code, a.ok) for a in WebhookAttempt.objects.filter(delivery=delivery)] == [(503, False), (200, True)]
    assert [e["message"]["text"]["body"] for e in receiver.events()] == ["my order never came"] * 2


def test_an_event_given_up_while_being_posted_stays_given_up(receiver, monkeypatch, django_capture_on_commit_callbacks):
    """The developer removes the webhook while an event is being posted, and that attempt fails: the
    event stays given up, and is not posted to the webhook they set up later (only what comes after)."""
    app = with_webhook(receiver)
    user = UserFactory()
    user_writes(app, user, "before the move", django_capture_on_commit_callbacks)
    receiver.responses = [500]
    meanwhile(monkeypatch, lambda: webhooks.clear_webhook(app=app))

    webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.last_error == "webhook removed" and delivery.attempts == 1

    with_webhook(receiver, app)
    user_writes(app, user, "after the move", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due(now=timezone.now() + timedelta(minutes=5)) == 1
    assert [e["message"]["text"]["body"] for e in receiver.events()] == ["before the move", "after the move"]


def test_an_app_deleted_while_its_event_is_being_posted_holds_up_no_other_app(
        receiver, monkeypatch, django_capture_on_commit_callbacks):
    """An operator deletes an app while its event is being posted: the worker finds nothing left to
    record and goes on to the other apps' events (the sweep does not stop at an error)."""
    doomed, other = with_webhook(receiver), with_webhook(receiver)
    user = UserFactory()
    user_writes(doomed, user, "hello doomed", django_capture_on_commit_callbacks)
    user_writes(other, user, "hello other", django_capture_on_commit_callbacks)
    meanwhile(monkeypatch, lambda: DeveloperApp.objects.get(
        pk=json.loads(receiver.posts[0]["raw"])["app_id"]).delete())

    webhooks.deliver_due()

    gone, kept = [e["app_id"] for e in receiver.events()], {doomed.pk, other.pk}
    assert len(gone) == 2 and set(gone) == kept  # whichever went first was deleted; the other was posted
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.status == "delivered" and delivery.app_id == gone[1]


def test_a_suspended_app_hears_nothing_until_it_is_reinstated(receiver, django_capture_on_commit_callbacks, admin_user):
    """Suspended for spam, an app must not go on reading what people write to it: its events wait,
    in order, and go out once an operator reinstates it, however long that took."""
    app = with_webhook(receiver)
    apps.suspend_app(app=app, reason="spam", actor=admin_user)
    user = UserFactory()
    user_writes(app, user, "are you still there?", django_capture_on_commit_callbacks)
    user_writes(app, user, "hello?", django_capture_on_commit_callbacks)

    assert webhooks.deliver_due() == 0
    later = timezone.now() + timedelta(days=3)  # longer than retries go on for
    assert webhooks.deliver_due(now=later) == 0
    assert receiver.posts == []
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}

    with django_capture_on_commit_callbacks(execute=True):
        apps.reinstate_app(app=app, actor=admin_user)
    assert webhooks.deliver_due(now=later) == 2
    assert [p["json"]["message"]["text"]["body"] for p in receiver.posts] == ["are you still there?", "hello?"]


def test_an_app_whose_owner_is_suspended_hears_nothing_until_the_owner_is_reinstated(
        receiver, django_capture_on_commit_callbacks, admin_user):
    app = with_webhook(receiver)
    spam.suspend_user(user=app.owner, actor=admin_user)
    user_writes(app, UserFactory(), "anyone?", django_capture_on_commit_callbacks)

    assert webhooks.deliver_due() == 0 and receiver.posts == []

    with django_capture_on_commit_callbacks(execute=True):
        spam.reinstate_user(user=app.owner, actor=admin_user)
    assert webhooks.deliver_due() == 1
    assert [p["json"]["message"]["text"]["body"] for p in receiver.posts] == ["anyone?"]


def test_backoff_doubles_up_to_an_hour():
    assert [webhooks.backoff_delay(n) for n in (1, 2, 3, 9, 10, 50)] == [10, 20, 40, 2560, 3600, 3600]


# --- the documented example receiver -------------------------------------------------------------
def load_example():
    spec = importlib.util.spec_from_file_location("webhook_receiver", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_the_example_receiver_in_the_docs_verifies_our_signatures(settings, django_capture_on_commit_callbacks):
    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}
    example = load_example()
    app = make_app()
    heard = []
    server = example.make_server("127.0.0.1", 0, secret=app.webhook_secret, verify_token="s3cret",
                                 on_event=heard.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
        webhooks.set_webhook(app=app, url=url, verify_token="s3cret")
        user_writes(app, UserFactory(), "hello example", django_capture_on_commit_callbacks)
        assert webhooks.deliver_due() == 1
        # A forged event (signed with another secret) is refused, and retried, never handled.
        forged = app.webhook_secret
        DeveloperApp.objects.filter(pk=app.pk).update(webhook_secret="f" * 64)
        user_writes(app, UserFactory(), "forged", django_capture_on_commit_callbacks)
        webhooks.deliver_due()
        assert WebhookAttempt.objects.order_by("-id").first().status_code == 401
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert [e["message"]["text"]["body"] for e in heard] == ["hello example"]
    assert forged == app.webhook_secret



def test_the_example_receivers_own_handler_accepts_media_messages_too(
        settings, tmp_path, capsys, django_capture_on_commit_callbacks):
    # A receiver that failed on a photo would never accept it, and hold up the conversation's
    # later events behind it (in order), so the example must handle every message type.
    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    example = load_example()
    app = make_app()
    server = example.make_server("127.0.0.1", 0, secret=app.webhook_secret, verify_token="s3cret")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        webhooks.set_webhook(app=app, url=f"http://127.0.0.1:{server.server_address[1]}/webhook", verify_token="s3cret")
        user = UserFactory(display_name="Ada")
        conversation = direct_conversation(user, app.bot)
        photo = broker_media.upload(uploader=user, file=samples.uploaded(samples.image_bytes()))
        voice = broker_media.upload(uploader=user, file=samples.uploaded(samples.OGG_OPUS), kind="voice")
        for client_id, media, caption in (("p", photo, "The broken part"), ("v", voice, ""), ("t", None, "thanks")):
            with django_capture_on_commit_callbacks(execute=True):
                user_sends(sender=user, conversation_id=conversation.pk, client_id=client_id,
                           media_id=media.pk if media else None, text=caption)
        assert webhooks.deliver_due() == 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert set(WebhookAttempt.objects.values_list("status_code", flat=True)) == {200}
    assert WebhookDelivery.objects.filter(status="delivered").count() == 3
    printed = capsys.readouterr().out
    assert f"image {photo.pk} (image/jpeg) The broken part" in printed
    assert f"audio {voice.pk} (audio/ogg)" in printed and "wrote: thanks" in printed


def test_the_example_receiver_hears_of_a_message_taken_down(settings, capsys, django_capture_on_commit_callbacks):
    from broker.services import moderation

    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}
    example = load_example()
    app = make_app()
    server = example.make_server("127.0.0.1", 0, secret=app.webhook_secret, verify_token="s3cret")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        webhooks.set_webhook(app=app, url=f"http://127.0.0.1:{server.server_address[1]}/webhook", verify_token="s3cret")
        spam = user_writes(app, UserFactory(), "buy cheap watches", django_capture_on_commit_callbacks)
        assert webhooks.deliver_due() == 1
        with django_capture_on_commit_callbacks(execute=True):
            moderation.take_down(message_id=spam.pk)
        assert webhooks.deliver_due() == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert f"message in_{spam.pk} was removed" in capsys.readouterr().out


# --- the task worker ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_task_worker_delivers_queued_events(receiver):
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    app = with_webhook(receiver)
    user = UserFactory()
    sent_message(user, direct_conversation(user, app.bot), "via the worker")  # commits: the signal runs
    assert DBTaskResult.objects.filter(task_path="developer_api.tasks.deliver_webhook_lane").count() == 1
    assert receiver.posts == []  # nothing is posted from the request itself

    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=None, worker_id="test-worker", excluded_queue_names=[]).run()

    assert [e["message"]["text"]["body"] for e in receiver.events()] == ["via the worker"]
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
    assert WebhookDelivery.objects.get().status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_a_failed_attempt_queues_its_retry_for_later(receiver):
    from django_tasks_db.models import DBTaskResult

    app = with_webhook(receiver)
    receiver.responses = [500]
    user = UserFactory()
    sent_message(user, direct_conversation(user, app.bot), "retry me")
    delivery = WebhookDelivery.objects.get()

    webhooks.deliver_lane(app_id=app.pk, conversation_id=delivery.conversation_id)

    delivery.refresh_from_db()
    retry = DBTaskResult.objects.order_by("-enqueued_at").first()
    assert DBTaskResult.objects.count() == 2 and retry.run_after == delivery.next_attempt_at


def test_a_message_taken_down_before_the_app_had_it_is_never_posted(receiver, django_capture_on_commit_callbacks):
    """A moderator takes down what a user wrote to an app while its event waits (the app's webhook
    was failing, or the worker is behind): the app is not sent it, and the event log keeps none of it."""
    from broker.services import moderation

    app = with_webhook(receiver)
    user = UserFactory()
    spam = user_writes(app, user, "buy cheap watches", django_capture_on_commit_callbacks)
    after = user_writes(app, user, "where is my order?", django_capture_on_commit_callbacks)

    moderation.take_down(message_id=spam.pk)
    webhooks.deliver_due()

    # Nor is it told of the removal of a message it never had.
    assert [(event["event"], event["message"]["id"]) for event in receiver.events()] == [("message", f"in_{after.pk}")]
    taken = WebhookDelivery.objects.get(seq=spam.seq)
    assert taken.status == "failed" and "taken down" in taken.last_error
    assert "cheap watches" not in taken.body
    # Resent by an operator, it says only that the message is gone.
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.resend(delivery=taken, actor=UserFactory(is_staff=True))
    webhooks.deliver_due()
    resent = receiver.events()[-1]["message"]
    assert resent == {"id": f"in_{spam.pk}", "from": user.phone_number, "from_user_id": user.pk,
                      "from_name": user.display_name, "type": "removed", "created_at": resent["created_at"]}


def test_an_event_the_app_had_is_not_resent_with_what_was_taken_down(receiver, django_capture_on_commit_callbacks,
                                                                    admin_user):
    from broker.services import moderation

    app = with_webhook(receiver)
    spam = user_writes(app, UserFactory(), "buy cheap watches", django_capture_on_commit_callbacks)
    webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get()

    moderation.take_down(message_id=spam.pk)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.resend(delivery=delivery, actor=admin_user)
    webhooks.deliver_due()

    first, again, removal = receiver.events()
    assert first["message"]["text"] == {"body": "buy cheap watches"}  # before the take-down
    assert again["message"]["type"] == "removed" and "text" not in again["message"]
    assert removal["event"] == "message.removed" and removal["removed"]["id"] == f"in_{spam.pk}"
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and "cheap watches" not in delivery.body


def test_an_app_that_had_a_message_hears_it_was_taken_down(receiver, django_capture_on_commit_callbacks):
    """The app was posted what a user wrote; an operator takes it down. The app is sent a signed
    `message.removed` naming the message, without what it said; an app not in that conversation
    hears nothing. Refused, it is retried as any event."""
    from broker.services import moderation

    app, bystander = with_webhook(receiver), with_webhook(receiver)
    user = UserFactory()
    spam = user_writes(app, user, "buy cheap watches", django_capture_on_commit_callbacks)
    user_writes(bystander, UserFactory(), "hello", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due() == 2
    receiver.responses = [503]

    with django_capture_on_commit_callbacks(execute=True):
        moderation.take_down(message_id=spam.pk)
    assert webhooks.deliver_due() == 0  # refused: retried later
    later = timezone.now() + timedelta(seconds=11)
    assert webhooks.deliver_due(now=later) == 1

    refused, post = receiver.posts[2:]
    assert refused["raw"] == post["raw"] and len(receiver.posts) == 4
    assert valid_signature(post, app.webhook_secret)
    assert post["headers"]["X-Messenger-Event"] == "message.removed"
    assert post["json"] == {
        "object": "messenger_app", "app_id": app.pk, "event": "message.removed",
        "removed": {"id": f"in_{spam.pk}", "conversation_id": spam.conversation_id, "seq": spam.seq,
                    "user_id": user.pk, "timestamp": post["json"]["removed"]["timestamp"]},
    }
    assert b"watches" not in post["raw"]


def test_an_app_hears_when_its_own_message_is_taken_down(receiver, django_capture_on_commit_callbacks):
    from broker.services import moderation
    from developer_api.models import OutboundMessage

    app, client = app_client()
    with_webhook(receiver, app)
    user = opted_in_user(app)
    sent = client.post("/developer/v1/messages", text(user.phone_number, "50% off everything")).json()
    [message_id] = [m["id"] for m in sent["messages"]]
    message = OutboundMessage.objects.get(public_id=message_id).message

    with django_capture_on_commit_callbacks(execute=True):
        moderation.take_down(message_id=message.pk)
    webhooks.deliver_due()

    [removal] = receiver.events()
    assert removal["event"] == "message.removed"
    assert removal["removed"] == {"id": message_id, "conversation_id": message.conversation_id, "seq": message.seq,
                                  "user_id": user.pk, "timestamp": removal["removed"]["timestamp"]}


def test_a_message_taken_down_while_its_event_is_being_posted_is_followed_by_its_removal(
        receiver, monkeypatch, django_capture_on_commit_callbacks):
    """The worker is posting the user's message (its content already read) when an operator takes
    it down: the app may have it, so it hears of the removal, and only after the message's event,
    even should a second worker look at the conversation meanwhile."""
    from broker.services import moderation

    app = with_webhook(receiver)
    spam = user_writes(app, UserFactory(), "buy cheap watches", django_capture_on_commit_callbacks)
    post = webhooks._request
    meanwhile = []

    def taken_down_while_posting(method, url, **kwargs):
        if method == "POST" and not meanwhile:
            meanwhile.append(moderation.take_down(message_id=spam.pk))
            # Another worker, woken by the removal's event, tries the same conversation.
            meanwhile.append(webhooks.deliver_lane(app_id=app.pk, conversation_id=spam.conversation_id))
        return post(method, url, **kwargs)

    monkeypatch.setattr(webhooks, "_request", taken_down_while_posting)
    webhooks.deliver_due()

    assert meanwhile[1] == 0  # the other worker posted nothing: the message's event was still being posted
    message, removal = receiver.events()
    assert message["message"]["text"] == {"body": "buy cheap watches"}  # read before the take-down
    assert removal["event"] == "message.removed" and removal["removed"]["id"] == f"in_{spam.pk}"
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_an_app_hears_when_a_user_deletes_for_everyone_what_they_wrote_to_it(
        receiver, django_capture_on_commit_callbacks):
    from broker.services import deletion

    app = with_webhook(receiver)
    user = UserFactory()
    oops = user_writes(app, user, "my card number is 4111...", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due() == 1

    with django_capture_on_commit_callbacks(execute=True):
        deletion.delete_for_everyone(user=user, conversation_id=oops.conversation_id, seq=oops.seq)
    webhooks.deliver_due()

    _, removal = receiver.events()
    assert removal["event"] == "message.removed"
    assert removal["removed"]["id"] == f"in_{oops.pk}" and removal["removed"]["user_id"] == user.pk
    assert "4111" not in json.dumps(removal)


# --- edits -------------------------------------------------------------------------------------
def user_edits(message, text, on_commit):
    from broker.services import editing

    with on_commit(execute=True):
        return editing.edit_message(user=message.sender, conversation_id=message.conversation_id, seq=message.seq,
                                    text=text)


def test_an_app_that_had_a_message_hears_it_was_edited(receiver, django_capture_on_commit_callbacks):
    """The app was posted what a user wrote; the user edits it. The app is sent a signed
    `message.edited` with the new text, after the message's own event; an app not in that
    conversation hears nothing."""
    app, bystander = with_webhook(receiver), with_webhook(receiver)
    user = UserFactory()
    typo = user_writes(app, user, "I ordered 2 chairs", django_capture_on_commit_callbacks)
    user_writes(bystander, UserFactory(), "hello", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due() == 2

    edited, _ = user_edits(typo, "I ordered 3 chairs", django_capture_on_commit_callbacks)
    assert webhooks.deliver_due() == 1

    post = receiver.posts[-1]
    assert len(receiver.posts) == 3
    assert valid_signature(post, app.webhook_secret)
    assert post["headers"]["X-Messenger-Event"] == "message.edited"
    assert post["json"] == {
        "object": "messenger_app", "app_id": app.pk, "event": "message.edited",
        "edited": {"id": f"in_{typo.pk}", "conversation_id": typo.conversation_id, "seq": typo.seq,
                   "user_id": user.pk, "text": {"body": "I ordered 3 chairs"},
                   "timestamp": events.timestamp(edited.edited_at)},
    }
    delivery = WebhookDelivery.objects.get(app=app, seq=typo.seq, event="message")
    assert "3 chairs" in delivery.body  # an operator's resend carries what it says now


def test_a_message_edited_before_the_app_had_it_is_posted_as_edited_and_only_once(
        receiver, django_capture_on_commit_callbacks):
    """Its event waits (the app's webhook was failing, or the worker is behind) when the user edits
    it: the app is posted the new text, and no `message.edited` for a message it never had."""
    app = with_webhook(receiver)
    user = UserFactory()
    typo = user_writes(app, user, "my adress is 1 Main St", django_capture_on_commit_callbacks)

    user_edits(typo, "my address is 1 Main St", django_capture_on_commit_callbacks)
    webhooks.deliver_due()

    assert [(e["event"], e["message"]["text"]["body"]) for e in receiver.events()] == [
        ("message", "my address is 1 Main St")]


def test_an_edited_caption_reaches_the_app(receiver, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    app = with_webhook(receiver)
    user = UserFactory()
    conversation = direct_conversation(user, app.bot)
    photo = broker_media.upload(uploader=user, file=samples.uploaded(samples.image_bytes()))
    with django_capture_on_commit_callbacks(execute=True):
        message, _ = user_sends(sender=user, conversation_id=conversation.pk, client_id="p", media_id=photo.pk,
                                text="the brokn part")
    user_edits(message, "the broken part", django_capture_on_commit_callbacks)  # before the app had it
    webhooks.deliver_due()
    user_edits(message, "", django_capture_on_commit_callbacks)  # after: no caption now
    webhooks.deliver_due()

    posted, edited = receiver.events()
    assert posted["message"]["image"]["caption"] == "the broken part"
    assert (edited["event"], edited["edited"]["text"]) == ("message.edited", {"body": ""})
    assert "caption" not in json.loads(WebhookDelivery.objects.get(event="message").body)["message"]["image"]


def test_the_example_receiver_hears_of_an_edit(settings, capsys, django_capture_on_commit_callbacks):
    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}
    example = load_example()
    app = make_app()
    server = example.make_server("127.0.0.1", 0, secret=app.webhook_secret, verify_token="s3cret")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        webhooks.set_webhook(app=app, url=f"http://127.0.0.1:{server.server_address[1]}/webhook", verify_token="s3cret")
        typo = user_writes(app, UserFactory(), "2 chairs", django_capture_on_commit_callbacks)
        assert webhooks.deliver_due() == 1
        user_edits(typo, "3 chairs", django_capture_on_commit_callbacks)
        assert webhooks.deliver_due() == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert f"message in_{typo.pk} was edited: 3 chairs" in capsys.readouterr().out
