"""The developer page of the browser UI (/developer/): plain CSRF-protected forms, no scripts."""

import re

import pytest
from django.test import Client

from developer_api.models import ApiKey, CommercialRequest, DeveloperApp
from developer_api.services import keys
from tests.developer_api.helpers import make_app, make_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(display_name="Dev")


@pytest.fixture
def browser(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    return client


def csrf(client) -> str:
    html = client.get("/developer/").content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_the_page_needs_a_login():
    response = Client().get("/developer/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_page_lists_the_owners_apps_only(browser, owner):
    make_app(owner, name="Mine")
    make_app(name="Not mine")

    html = browser.get("/developer/").content.decode()

    assert "Mine" in html and "Not mine" not in html


def test_the_page_has_no_inline_script_and_a_strict_policy(browser):
    response = browser.get("/developer/")
    html = response.content.decode()

    assert "<script" not in html and " style=" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_registering_an_app_from_the_page(browser, owner):
    response = browser.post("/developer/apps/new", {"name": "Shop bot", "description": "Orders",
                                                    "csrfmiddlewaretoken": csrf(browser)})

    app = DeveloperApp.objects.get(owner=owner)
    assert response.status_code == 302 and response["Location"] == f"/developer/#app-{app.pk}"
    assert app.name == "Shop bot" and app.bot.is_business


def test_forms_need_the_csrf_token(browser, owner):
    response = browser.post("/developer/apps/new", {"name": "No token"})

    assert response.status_code == 403 and not DeveloperApp.objects.exists()


def test_a_new_key_is_shown_once(browser, owner):
    app = make_app(owner)

    made = browser.post(f"/developer/apps/{app.pk}/keys/new", {
        "name": "server", "scopes": ["messages:send", "webhooks:manage"], "csrfmiddlewaretoken": csrf(browser),
    })

    key = ApiKey.objects.get(app=app)
    raw = re.search(r'value="(mk_[^"]+)"', made.content.decode()).group(1)
    assert made.status_code == 201 and keys.hash_key(raw) == key.key_hash
    assert key.scopes == ["messages:send", "webhooks:manage"]
    assert "no-store" in made["Cache-Control"] or "no-cache" in made["Cache-Control"]
    again = browser.get("/developer/").content.decode()
    assert raw not in again and key.prefix in again


def test_a_key_form_with_no_scope_shows_the_error(browser, owner):
    app = make_app(owner)

    response = browser.post(f"/developer/apps/{app.pk}/keys/new", {"name": "x", "csrfmiddlewaretoken": csrf(browser)})

    assert response.status_code == 400 and "field-error" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_a_key_from_the_page(browser, owner):
    app = make_app(owner)
    key, _ = make_key(app)

    response = browser.post(f"/developer/apps/{app.pk}/keys/{key.pk}/revoke", {"csrfmiddlewaretoken": csrf(browser)})

    key.refresh_from_db()
    assert response.status_code == 302 and key.revoked_at is not None


def test_asking_for_commercial_use_from_the_page(browser, owner):
    app = make_app(owner)

    browser.post(f"/developer/apps/{app.pk}/commercial", {"use_description": "A shop's order updates",
                                                          "csrfmiddlewaretoken": csrf(browser)})

    assert CommercialRequest.objects.get(app=app).status == "pending"
    assert "waiting for an operator" in browser.get("/developer/").content.decode()


@pytest.mark.parametrize("url", ["http://example.com:abc/hook", "http://[::1/hook"])
def test_a_malformed_webhook_url_shows_the_error_on_the_form(browser, owner, url):
    app = make_app(owner)

    response = browser.post(f"/developer/apps/{app.pk}/webhook", {"url": url, "verify_token": "x",
                                                                  "csrfmiddlewaretoken": csrf(browser)})

    assert response.status_code == 400 and "not a valid URL" in response.content.decode()
    app.refresh_from_db()
    assert app.webhook_url == ""


def test_someone_elses_app_is_not_found(browser):
    app = make_app()
    key, _ = make_key(app)
    token = csrf(browser)

    assert browser.post(f"/developer/apps/{app.pk}/keys/new", {"scopes": ["messages:send"],
                                                               "csrfmiddlewaretoken": token}).status_code == 404
    assert browser.post(f"/developer/apps/{app.pk}/keys/{key.pk}/revoke",
                        {"csrfmiddlewaretoken": token}).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
