"""Owners' side: registering apps, their bot accounts, API keys (shown once, hashed, revocable),
commercial requests and the usage report, through /api/v1/developer/apps."""

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone

from broker.errors import InvalidInput
from broker.phone import normalize_phone_number
from developer_api.models import ApiKey, CommercialRequest, DeveloperApp
from developer_api.services import apps, keys
from tests.developer_api.app_schema import AppClient
from tests.developer_api.helpers import ALL_SCOPES, make_app, make_key
from tests.factories import api_user

pytestmark = pytest.mark.django_db

APPS = "/api/v1/developer/apps"


def test_a_user_registers_an_app_with_an_account_of_its_own():
    owner, client = api_user()

    response = client.post(APPS, {"name": "  Ride Share ", "description": "Drivers and passengers"})

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Ride Share" and body["tier"] == "free" and body["status"] == "active"
    assert body["bot"]["display_name"] == "Ride Share" and body["bot"]["is_business"] is True
    assert body["bot"]["id"] != owner.pk
    assert client.get(APPS).json() == [body]
    assert client.get(f"{APPS}/{body['id']}").json() == body


def test_the_bot_account_cannot_log_in_and_its_number_is_no_phone_number():
    app = make_app()
    bot = app.bot

    assert bot.is_business and not bot.has_usable_password()
    assert authenticate(phone_number=bot.phone_number, password="") is None
    # "+0...": no country code starts with 0, so no real number can ever be the same.
    assert bot.phone_number.startswith("+0") and len(bot.phone_number) == 16
    with pytest.raises(InvalidInput):
        normalize_phone_number(bot.phone_number)


def test_nobody_reaches_a_bot_by_its_number():
    app = make_app()
    _, client = api_user()

    response = client.post("/api/v1/conversations", {"kind": "direct", "phone_number": app.bot.phone_number})

    assert response.status_code == 400 and response.json()["error"]["field"] == "phone_number"


def test_renaming_an_app_renames_its_account():
    owner, client = api_user()
    app = make_app(owner)

    response = client.patch(f"{APPS}/{app.pk}", {"name": "Shop bot", "description": "Orders"})

    assert response.status_code == 200 and response.json()["bot"]["display_name"] == "Shop bot"
    app.bot.refresh_from_db()
    assert app.bot.about == "Orders"


def test_apps_of_others_are_not_found():
    app = make_app()
    _, stranger = api_user()

    for response in (stranger.get(f"{APPS}/{app.pk}"), stranger.get(f"{APPS}/{app.pk}/keys"),
                     stranger.post(f"{APPS}/{app.pk}/keys", {"scopes": ["messages:send"]}),
                     stranger.get(f"{APPS}/{app.pk}/usage")):
        assert response.status_code == 404


def test_the_owner_api_needs_a_login(api_client):
    assert api_client.get(APPS).status_code == 401


def test_an_app_name_is_required():
    _, client = api_user()

    response = client.post(APPS, {"name": "   "})

    assert response.status_code == 400 and response.json()["error"]["field"] == "name"


def test_names_that_no_database_could_store_are_refused_by_field():
    # JSON can spell an unpaired surrogate; the services refuse it whoever calls them, not only DRF.
    owner, _ = api_user()
    with pytest.raises(InvalidInput) as refused:
        apps.create_app(owner=owner, name="Ride \ud800")
    assert refused.value.field == "name"
    app = apps.create_app(owner=owner, name="Ride Share")
    with pytest.raises(InvalidInput) as refused:
        keys.create_key(app=app, name="ci \udfff", scopes=ALL_SCOPES)
    assert refused.value.field == "name"
    assert app.keys.count() == 0


def test_one_person_has_a_limited_number_of_apps(developer_settings):
    developer_settings(MAX_APPS_PER_USER=2)
    _, client = api_user()
    for n in range(2):
        assert client.post(APPS, {"name": f"App {n}"}).status_code == 201

    response = client.post(APPS, {"name": "One too many"})

    assert response.status_code == 403


# --- keys --------------------------------------------------------------------------------------
def test_a_key_is_shown_once_and_stored_only_as_a_hash():
    owner, client = api_user()
    app = make_app(owner)

    response = client.post(f"{APPS}/{app.pk}/keys", {"name": "server", "scopes": ["messages:send", "messages:read"]})

    assert response.status_code == 201
    created = response.json()
    raw = created["key"]
    assert raw.startswith("mk_") and created["prefix"] == raw[:11] and created["state"] == "active"
    stored = ApiKey.objects.get(pk=created["id"])
    assert stored.key_hash == keys.hash_key(raw) and raw not in str(stored.__dict__)
    listed = client.get(f"{APPS}/{app.pk}/keys").json()
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    assert AppClient(raw).get("/developer/v1/app").json()["key"]["id"] == created["id"]


def test_an_app_has_several_keys_each_with_its_scopes():
    app = make_app()
    _, sender_raw = make_key(app, ["messages:send"])
    _, reader_raw = make_key(app, ["messages:read"])

    assert AppClient(sender_raw).get("/developer/v1/app").json()["key"]["scopes"] == ["messages:send"]
    assert AppClient(reader_raw).get("/developer/v1/app").json()["key"]["scopes"] == ["messages:read"]


def test_an_app_has_a_limited_number_of_keys_in_use(developer_settings):
    # Revoked and expired keys work no more, so they leave room for new ones.
    developer_settings(MAX_KEYS_PER_APP=3)
    owner, client = api_user()
    app = make_app(owner)
    revoked, _ = make_key(app)
    keys.revoke_key(key=revoked)
    expired, _ = make_key(app, expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for n in range(3):
        assert client.post(f"{APPS}/{app.pk}/keys", {"scopes": ALL_SCOPES}).status_code == 201, n

    response = client.post(f"{APPS}/{app.pk}/keys", {"scopes": ALL_SCOPES})

    assert response.status_code == 403
    assert response.json()["error"] == {"code": "forbidden",
                                        "message": "This app has 3 keys in use already; revoke one first."}


def test_unknown_scopes_are_refused():
    owner, client = api_user()
    app = make_app(owner)

    response = client.post(f"{APPS}/{app.pk}/keys", {"scopes": ["messages:everything"]})
    empty = client.post(f"{APPS}/{app.pk}/keys", {"scopes": []})

    assert response.status_code == 400 and response.json()["error"]["field"].startswith("scopes")
    assert empty.status_code == 400


def test_revoking_a_key_works_at_once():
    owner, client = api_user()
    app = make_app(owner)
    key, raw = make_key(app)
    app_client = AppClient(raw)
    assert app_client.get("/developer/v1/app").status_code == 200

    assert client.delete(f"{APPS}/{app.pk}/keys/{key.pk}").status_code == 204

    response = app_client.get("/developer/v1/app")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert "revoked" in response.json()["error"]["message"]
    assert client.get(f"{APPS}/{app.pk}/keys").json()[0]["state"] == "revoked"


def test_an_expired_key_stops_working():
    app = make_app()
    key, raw = make_key(app, expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = AppClient(raw).get("/developer/v1/app")

    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_a_key_cannot_expire_in_the_past():
    owner, client = api_user()
    app = make_app(owner)

    response = client.post(f"{APPS}/{app.pk}/keys", {"scopes": ALL_SCOPES,
                                                      "expires_at": "2001-01-01T00:00:00Z"})

    assert response.status_code == 400 and response.json()["error"]["field"] == "expires_at"


def test_unknown_and_malformed_keys_are_refused():
    for header in ("Bearer mk_nothing", "Bearer", "Basic abc", "Bearer two words"):
        client = AppClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/developer/v1/app")
        assert response.status_code == 401, header
    assert AppClient().get("/developer/v1/app").json()["error"]["code"] == "not_authenticated"


def test_a_device_token_is_no_api_key():
    _, client = api_user()
    token = client._credentials["HTTP_AUTHORIZATION"].split()[1]

    assert AppClient(token).get("/developer/v1/app").status_code == 401


# --- commercial tier ---------------------------------------------------------------------------
def test_the_owner_asks_for_commercial_use_once_at_a_time():
    owner, client = api_user()
    app = make_app(owner)

    first = client.post(f"{APPS}/{app.pk}/commercial", {"use_description": "Order updates for our shop"})
    second = client.post(f"{APPS}/{app.pk}/commercial", {"use_description": "Again"})

    assert first.status_code == 201 and first.json()["status"] == "pending"
    assert second.status_code == 409
    assert [r["status"] for r in client.get(f"{APPS}/{app.pk}/commercial").json()] == ["pending"]


def test_an_approved_request_makes_the_app_commercial(admin_user):
    owner, client = api_user()
    app = make_app(owner)
    request = apps.request_commercial(app=app, use_description="Shop")

    assert apps.decide_commercial(request=request, approve=True, actor=admin_user)

    assert client.get(f"{APPS}/{app.pk}").json()["tier"] == "commercial"
    assert client.get(f"{APPS}/{app.pk}/commercial").json()[0]["status"] == "approved"
    assert not apps.decide_commercial(request=request, approve=False, actor=admin_user)  # decided already
    again = client.post(f"{APPS}/{app.pk}/commercial", {"use_description": "More"})
    assert again.status_code == 409


def test_moving_an_app_to_commercial_answers_its_waiting_request(admin_user):
    # The owner must not read "pending" (or later "refused") about an app an operator made
    # commercial from the apps list.
    owner, client = api_user()
    app = make_app(owner)
    request = apps.request_commercial(app=app, use_description="Shop")

    assert apps.set_tier(app=app, tier=DeveloperApp.Tier.COMMERCIAL, actor=admin_user)

    [shown] = client.get(f"{APPS}/{app.pk}/commercial").json()
    assert shown["status"] == "approved"
    assert not apps.decide_commercial(request=request, approve=False, actor=admin_user)  # decided already
    assert client.get(f"{APPS}/{app.pk}").json()["tier"] == "commercial"


def test_a_refused_request_leaves_the_app_free(admin_user):
    app = make_app()
    request = apps.request_commercial(app=app, use_description="Shop")

    apps.decide_commercial(request=request, approve=False, actor=admin_user, note="Tell us more")

    app.refresh_from_db()
    assert app.tier == DeveloperApp.Tier.FREE
    assert CommercialRequest.objects.get(pk=request.pk).decision_note == "Tell us more"


def test_the_usage_report_starts_empty():
    owner, client = api_user()
    app = make_app(owner)

    report = client.get(f"{APPS}/{app.pk}/usage").json()

    assert report["tier"] == "free" and report["monthly_cap"] == 1000 and report["remaining_this_month"] == 1000
    assert len(report["months"]) == 12 and report["months"][0]["messages"] == 0
