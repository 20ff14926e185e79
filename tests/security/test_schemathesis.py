"""Schemathesis against both APIs' own OpenAPI documents, in process (WSGI), authenticated.

The client API (/api/schema/, a device token) and the developer API's app-facing part
(/developer/v1/schema/, an API key with every scope).

For every operation of /api/schema/ it generates valid and invalid requests (schemathesis'
positive and negative modes) and checks: no 5xx, every status and body as documented (errors in
the `{"error": {...}}` shape), the documented content type, and that a refused request (4xx)
changed nothing stored. Path ids point at real rows half the time, so requests get past "not
found" to the validation behind it. Bounded: a few examples per operation, well under a minute.
"""

import random
import socket

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from storage.models import Block, Contact, Conversation, Departure, Device, Membership, Message, User
from tests.factories import direct_conversation, group_conversation, sent_message, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_OPERATION = 15


# Loaded when the module is collected (pytest-django has set Django up by then), through the app
# itself as clients download it; schemathesis' lazy `from_fixture` does not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
try:
    app_schema = schemathesis.openapi.from_wsgi("/developer/v1/schema/", get_wsgi_application())
except Exception:  # noqa: BLE001 - no developer API in this tree
    app_schema = None

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fuzzed webhook URLs name random hosts: resolving or reaching them must never leave this
    machine, so any name but a loopback one fails to resolve (as on a machine with no network)."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, (str, bytes)) and (host if isinstance(host, str) else host.decode()) in (
                "127.0.0.1", "localhost", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "the fuzzing tests resolve loopback names only")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture(autouse=True)
def requests_on_this_threads_connection():
    """As with Django's test client: the requests run in this thread and keep its database
    connection open between them. Django's handler closes it as each request ends (the tests set
    CONN_MAX_AGE to 0), and a new PostgreSQL connection costs each request and each check of the
    stored data about 6 ms."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def stored() -> tuple:
    """What a request could change; Device.last_used_at is left out (using a token touches it)."""
    return (
        list(User.objects.order_by("pk").values_list("pk", "phone_number", "display_name", "about", "password")),
        list(Device.objects.order_by("pk").values_list("pk", "user_id", "name", "token_hash")),
        list(Contact.objects.order_by("pk").values_list("pk", "owner_id", "contact_id", "name")),
        list(Block.objects.order_by("pk").values_list("pk", "blocker_id", "blocked_id")),
        list(Conversation.objects.order_by("pk").values_list("pk", "title", "last_seq")),
        list(Membership.objects.order_by("pk").values_list("pk", "user_id", "role", "delivered_seq", "read_seq")),
        list(Message.objects.order_by("pk").values_list("pk", "seq", "client_id", "kind", "text", "edited_at")),
        list(Departure.objects.order_by("pk").values_list("pk", "user_id", "delivered_seq", "read_seq", "through_seq")),
    )


@pytest.fixture
def world(django_db_setup, transactional_db):
    alice, token = user_with_token(display_name="Alice")
    bob, _ = user_with_token(display_name="Bob")
    carol, _ = user_with_token(display_name="Carol")
    direct = direct_conversation(alice, bob)
    group = group_conversation(alice, bob, carol, title="Fuzz")
    left = group_conversation(bob, alice, carol, title="Left")  # a group Alice has left
    sent_message(alice, direct, "one")
    sent_message(bob, group, "two")
    sent_message(bob, left, "three")
    from broker.services.conversations import remove_member
    from broker.services.people import add_contact

    remove_member(actor=alice, conversation_id=left.pk, user_id=alice.pk)
    contact = add_contact(owner=alice, user_id=bob.pk)
    return {"token": token, "conversation_id": [direct.pk, group.pk, left.pk], "user_id": [bob.pk, carol.pk],
            "contact_id": [contact.pk], "seq": [1, 2]}  # alice's "one", bob's "two" (or a notice)


@schema.exclude(path="/api/v1/auth/logout").parametrize()
@hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))
def test_client_api_follows_its_schema(case, world, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 100_000}
    chooser = random.Random(repr(case.path_parameters))
    for name, value in (case.path_parameters or {}).items():
        if name in world and chooser.random() < 0.5:
            case.path_parameters[name] = chooser.choice(world[name])
    before = world.get("stored") or stored()

    response = case.call(headers={"Authorization": f"Bearer {world['token']}"})

    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        world["stored"] = stored()
        assert world["stored"] == before, f"{case.method} {case.formatted_path} -> {response.status_code} changed stored data"
        assert set(response.json()) == {"error"} and response.json()["error"]["code"]
    else:
        world["stored"] = None  # it may have changed


@schema.include(path="/api/v1/auth/logout").parametrize()
@hypothesis_settings(max_examples=5, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))
def test_logout_follows_its_schema(case, transactional_db):
    _, token = user_with_token()
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response, checks=CHECKS)


# --- the developer API's app-facing part ------------------------------------------------------------
def app_stored() -> tuple:
    from developer_api.models import ApiKey, DeveloperApp, OptIn, OutboundMessage

    return (
        list(Message.objects.order_by("pk").values_list("pk", "seq", "text")),
        list(OutboundMessage.objects.order_by("pk").values_list("pk")),
        list(DeveloperApp.objects.order_by("pk").values_list("pk", "name", "status", "webhook_url")),
        list(ApiKey.objects.order_by("pk").values_list("pk", "revoked_at")),
        list(OptIn.objects.order_by("pk").values_list("pk")),
    )


@pytest.fixture
def app_world(django_db_setup, transactional_db):
    from developer_api.services import messaging
    from tests.developer_api.helpers import make_app, make_key, opted_in_user

    app = make_app()
    key, raw = make_key(app)
    customer = opted_in_user(app)
    record, _ = messaging.send_message(api_key=key, to=customer.phone_number, message_type="text",
                                       text={"body": "hello"})
    return {"key": raw, "message_id": [record.public_id], "phone": customer.phone_number}


if app_schema is not None:
    @app_schema.parametrize()
    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def test_developer_api_follows_its_schema(case, app_world):
        chooser = random.Random(repr(case.path_parameters) + repr(case.body))
        for name, value in (case.path_parameters or {}).items():
            if name in app_world and chooser.random() < 0.5:
                case.path_parameters[name] = chooser.choice(app_world[name])
        if isinstance(case.body, dict) and "to" in case.body and chooser.random() < 0.5:
            case.body["to"] = app_world["phone"]
        before = app_world.get("stored") or app_stored()

        response = case.call(headers={"Authorization": f"Bearer {app_world['key']}"})

        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            app_world["stored"] = app_stored()
            assert app_world["stored"] == before, f"{case.method} {case.formatted_path} -> {response.status_code} stored data"
            assert set(response.json()) == {"error"} and response.json()["error"]["code"]
        else:
            app_world["stored"] = None  # it may have changed
else:
    @pytest.mark.skip(reason="no developer API schema (/developer/v1/schema/) in this tree")
    def test_developer_api_follows_its_schema():
        pass
