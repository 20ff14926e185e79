"""Registering, logging in on several devices, logging out one of them, and being refused without a
valid token. Every response is also checked against the OpenAPI document by the client."""

import pytest

from storage.models import Device, User
from tests.factories import PASSWORD, UserFactory, api_user
from tests.openapi import SchemaCheckedClient

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"


def register(client, phone_number="+12125550123", password=PASSWORD, display_name="Ada", **extra):
    body = {"phone_number": phone_number, "password": password, "display_name": display_name, **extra}
    return client.post(REGISTER, body)


# --- Registering ------------------------------------------------------------------------------
def test_registering_returns_the_new_user_and_a_token_that_works(api_client):
    response = register(api_client, display_name="Ada Lovelace")

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["phone_number"] == "+12125550123"
    assert body["user"]["display_name"] == "Ada Lovelace"
    me = SchemaCheckedClient(body["token"]).get(ME)
    assert me.status_code == 200
    assert me.json() == body["user"]


def test_registering_normalises_the_phone_number_to_e164(api_client):
    response = register(api_client, phone_number="+1 212-555-0123")

    assert response.status_code == 201
    assert response.json()["user"]["phone_number"] == "+12125550123"
    assert User.objects.get().phone_number == "+12125550123"


def test_registering_with_an_invalid_phone_number_names_the_field_and_stores_nothing(api_client):
    response = register(api_client, phone_number="12345")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == "phone_number"
    assert User.objects.count() == 0


def test_registering_a_number_that_is_taken_in_any_spelling_is_a_conflict(api_client):
    assert register(api_client, phone_number="+12125550123").status_code == 201

    response = register(api_client, phone_number="+1 (212) 555-0123", display_name="Someone else")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["field"] == "phone_number"
    assert User.objects.count() == 1


def test_registering_with_a_weak_password_names_the_field_and_stores_nothing(api_client):
    response = register(api_client, password="12345678")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "password"
    assert User.objects.count() == 0


def test_registering_without_a_display_name_names_the_field(api_client):
    response = api_client.post(REGISTER, {"phone_number": "+12125550123", "password": PASSWORD})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "display_name"
    assert User.objects.count() == 0


# --- Logging in on several devices ------------------------------------------------------------
def test_logging_in_returns_the_user_and_a_token(api_client):
    user = UserFactory()

    response = api_client.post(LOGIN, {"phone_number": user.phone_number, "password": PASSWORD, "device_name": "phone"})

    assert response.status_code == 200
    assert response.json()["user"]["id"] == user.pk
    assert SchemaCheckedClient(response.json()["token"]).get(ME).json()["id"] == user.pk
    assert Device.objects.get(user=user).name == "phone"


def test_logging_in_accepts_the_number_written_another_way(api_client):
    user = UserFactory(phone_number="+12125550123")

    response = api_client.post(LOGIN, {"phone_number": "+1 212 555 0123", "password": PASSWORD})

    assert response.status_code == 200
    assert response.json()["user"]["id"] == user.pk


def test_each_device_that_logs_in_gets_its_own_working_token(api_client):
    user = UserFactory()
    credentials = {"phone_number": user.phone_number, "password": PASSWORD}

    laptop = api_client.post(LOGIN, {**credentials, "device_name": "laptop"}).json()["token"]
    phone = api_client.post(LOGIN, {**credentials, "device_name": "phone"}).json()["token"]

    assert laptop != phone
    assert SchemaCheckedClient(laptop).get(ME).status_code == 200
    assert SchemaCheckedClient(phone).get(ME).status_code == 200
    assert sorted(Device.objects.filter(user=user).values_list("name", flat=True)) == ["laptop", "phone"]


def test_logging_in_with_a_wrong_password_is_refused_and_makes_no_device(api_client):
    user = UserFactory()

    response = api_client.post(LOGIN, {"phone_number": user.phone_number, "password": "not the password"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert Device.objects.count() == 0


def test_an_unknown_number_is_refused_exactly_like_a_wrong_password(api_client):
    user = UserFactory()

    wrong_password = api_client.post(LOGIN, {"phone_number": user.phone_number, "password": "not the password"})
    unknown_number = api_client.post(LOGIN, {"phone_number": "+12125550199", "password": PASSWORD})

    # The same answer for both, so nobody can find out who has an account by trying to log in.
    assert unknown_number.status_code == wrong_password.status_code == 401
    assert unknown_number.json() == wrong_password.json()


def test_logging_out_revokes_only_that_devices_token(api_client):
    user = UserFactory()
    credentials = {"phone_number": user.phone_number, "password": PASSWORD}
    laptop = SchemaCheckedClient(api_client.post(LOGIN, credentials).json()["token"])
    phone = SchemaCheckedClient(api_client.post(LOGIN, credentials).json()["token"])

    assert laptop.post(LOGOUT).status_code == 204

    refused = laptop.get(ME)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert phone.get(ME).status_code == 200
    assert Device.objects.filter(user=user).count() == 1


# --- Refused without a valid token ------------------------------------------------------------
def test_a_request_without_a_token_is_refused_with_401(api_client):
    response = api_client.get(ME)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_request_with_an_unknown_token_is_refused_with_401():
    response = SchemaCheckedClient("not-a-token-anyone-was-given").get("/api/v1/conversations")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_malformed_authorization_header_is_refused_with_401(api_client):
    response = api_client.get(ME, HTTP_AUTHORIZATION="Bearer two words")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_deactivated_accounts_tokens_stop_working():
    user, client = api_user()
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert client.get(ME).status_code == 401
