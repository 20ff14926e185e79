"""Hostile REST input: every answer a documented 4xx in the error shape, nothing stored.

Bodies too large (for the API's own limit and for Django's), nested too deeply, not UTF-8, with
NaN, unpaired surrogates or NUL in every text field, ids past any integer column. The shared text
cleaning in `broker.text` is tested at the service level too: the websocket and the browser forms
reach the services without DRF's field validation in between.
"""

import json

import pytest

from broker.errors import InvalidInput
from broker.services import accounts, conversations, people
from broker.text import clean_text
from storage.models import Contact, Conversation, Device, Message, User
from tests.factories import PASSWORD, UserFactory, api_user, direct_conversation
from tests.security.test_authorization import snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    user, client = api_user(display_name="Alice")
    bob = UserFactory(display_name="Bob")
    return {"user": user, "api": client, "bob": bob, "conversation": direct_conversation(user, bob)}


def post_raw(client, url: str, body: bytes | str, method: str = "post"):
    return getattr(client, method)(url, data=body, content_type="application/json")


def assert_error(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code, error
    if field:
        assert error.get("field") == field, error


def test_oversized_and_malformed_bodies_are_refused_in_the_error_shape(alice):
    api, c = alice["api"], alice["conversation"].pk
    url = f"/api/v1/conversations/{c}/messages"
    before = snapshot()

    assert_error(post_raw(api, url, json.dumps({"client_id": "a", "text": "x" * 300_000})), 413, "body_too_large")
    assert_error(post_raw(api, url, json.dumps({"client_id": "b", "text": "x" * 3_000_000})), 413, "body_too_large")
    assert_error(post_raw(api, url, "[" * 100_000 + "]" * 100_000), 400, "malformed_body")
    assert_error(post_raw(api, url, '{"client_id": "c", "text": ' + "[" * 5000 + "]" * 5000 + "}"), 400, "malformed_body")
    assert_error(post_raw(api, url, b'{"client_id": "d", "text": "\xff\xfe"}'), 400, "malformed_body")
    assert_error(post_raw(api, url, '{"client_id": "e", "text": NaN}'), 400, "malformed_body")
    assert_error(post_raw(api, url, '{"client_id": "f", "text": "unterminated'), 400, "malformed_body")
    assert_error(post_raw(api, url, "[]"), 400, "invalid")
    assert_error(api.post(url, data="text=hi", content_type="application/x-www-form-urlencoded"), 415,
                 "unsupported_media_type")

    assert snapshot() == before


SURROGATE = "a\ud800b"


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("patch", "/api/v1/me", {"display_name": SURROGATE}, "display_name"),
    ("patch", "/api/v1/me", {"about": SURROGATE}, "about"),
    ("patch", "/api/v1/me", {"display_name": "a\x00b"}, "display_name"),
    ("post", "/api/v1/contacts", {"user_id": "BOB", "name": SURROGATE}, "name"),
    ("post", "/api/v1/contacts", {"phone_number": "+1\ud800"}, "phone_number"),
    ("post", "/api/v1/conversations", {"kind": "group", "title": SURROGATE, "member_ids": []}, "title"),
    ("post", "/api/v1/conversations/CONV/messages", {"client_id": "s1", "text": SURROGATE}, "text"),
    ("post", "/api/v1/conversations/CONV/messages", {"client_id": SURROGATE, "text": "hi"}, "client_id"),
    ("post", "/api/v1/conversations/CONV/messages", {"client_id": "s2", "text": "a\x00"}, "text"),
    ("post", "/api/v1/auth/login", {"phone_number": "PHONE", "password": "pass\ud800word"}, "password"),
    ("post", "/api/v1/auth/login", {"phone_number": "PHONE", "password": PASSWORD, "device_name": SURROGATE},
     "device_name"),
    ("post", "/api/v1/auth/register", {"phone_number": "+12125550300", "password": "long \ud800 password",
                                       "display_name": "X"}, "password"),
])
def test_unpaired_surrogates_and_nul_in_any_text_field_are_invalid(alice, method, url, body, field):
    url = url.replace("CONV", str(alice["conversation"].pk))
    body = {k: (alice["bob"].pk if v == "BOB" else alice["user"].phone_number if v == "PHONE" else v)
            for k, v in body.items()}
    before = snapshot()
    devices = Device.objects.count()

    response = post_raw(alice["api"], url, json.dumps(body), method=method)

    assert_error(response, 400, "invalid", field)
    assert snapshot() == before and Device.objects.count() == devices


@pytest.mark.parametrize("url", [
    "/api/v1/conversations/99999999999999999999999",
    "/api/v1/conversations/99999999999999999999999/messages",
    "/api/v1/conversations/CONV/messages?after_seq=99999999999999999999999",
    "/api/v1/conversations/CONV/messages?before_seq=-1",
    "/api/v1/conversations/CONV/messages?limit=%ED%A0%80",
])
def test_ids_and_numbers_out_of_range_are_invalid(alice, url):
    response = alice["api"].get(url.replace("CONV", str(alice["conversation"].pk)))
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize(("url", "body"), [
    ("/api/v1/conversations/CONV/read", {"seq": 99999999999999999999999}),
    ("/api/v1/conversations/CONV/delivered", '{"seq": 1e400}'),  # a float that overflows to inf
    ("/api/v1/conversations", {"kind": "group", "title": "t", "member_ids": [99999999999999999999999]}),
    ("/api/v1/blocks/99999999999999999999999", None),
])
def test_numbers_past_any_column_are_invalid_and_change_nothing(alice, url, body):
    before = snapshot()
    raw = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    response = post_raw(alice["api"], url.replace("CONV", str(alice["conversation"].pk)), raw)
    assert_error(response, 400, "invalid")
    assert snapshot() == before


# --- the services themselves -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["\ud800", "x\udfff", "nul\x00"])
def test_clean_text_refuses_what_no_database_can_store(value):
    with pytest.raises(InvalidInput) as refused:
        clean_text(value, field="title", max_length=100)
    assert refused.value.field == "title"


def test_clean_text_strips_and_bounds():
    assert clean_text("  hi  ", field="f", max_length=5) == "hi"
    assert clean_text(None, field="f", max_length=5) == ""
    with pytest.raises(InvalidInput):
        clean_text("toolong", field="f", max_length=5)
    with pytest.raises(InvalidInput):
        clean_text(" ", field="f", max_length=5, required=True)
    with pytest.raises(InvalidInput):
        clean_text(5, field="f", max_length=5)


def test_every_service_text_input_is_cleaned():
    user = UserFactory()
    other = UserFactory()
    for call, field in [
        (lambda: accounts.update_profile(user=user, display_name="\ud800"), "display_name"),
        (lambda: accounts.update_profile(user=user, about="\ud800"), "about"),
        (lambda: accounts.login(phone_number=user.phone_number, password=PASSWORD, device_name="\ud800"), "device_name"),
        (lambda: accounts.check_password(phone_number=user.phone_number, password="\ud800"), "password"),
        (lambda: accounts.create_account(phone_number="+12125550301", password="a \ud800 password",
                                         display_name="X"), "password"),
        (lambda: accounts.create_account(phone_number="+12125550302", password=PASSWORD,
                                         display_name="\ud800"), "display_name"),
        (lambda: conversations.create_group(creator=user, title="Team \ud800", member_ids=[]), "title"),
        (lambda: people.add_contact(owner=user, user_id=other.pk, name="\ud800"), "name"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            call()
        assert refused.value.field == field
    assert not Contact.objects.exists() and not Conversation.objects.exists() and not Message.objects.exists()
    assert User.objects.count() == 2
