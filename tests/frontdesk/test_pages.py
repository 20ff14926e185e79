"""The browser UI's pages without a browser: forms, sessions, CSRF, the Content-Security-Policy."""

import json
import re

import pytest
from django.test import Client

from broker.services import people
from storage.models import Device, User
from tests.factories import PASSWORD, UserFactory, next_phone_number

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def csrf_token_from(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match, "the form carries no CSRF token"
    return match.group(1)


def register(client, **overrides):
    data = {"phone_number": next_phone_number(), "display_name": "Dora Explorer", "password": PASSWORD, **overrides}
    return client.post("/register/", data), data


# --- where people land ---------------------------------------------------------------------


def test_root_sends_visitors_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/login/"


def test_login_page_labels_its_fields(client):
    html = client.get("/login/").content.decode()
    assert '<label for="id_phone_number">Phone number</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'href="/register/"' in html and 'href="/api/docs/"' in html


def test_register_page_labels_its_fields(client):
    html = client.get("/register/").content.decode()
    for label in ("Phone number", "Display name", "Password"):
        assert f">{label}</label>" in html


def test_chat_page_for_a_logged_in_person(client):
    user = UserFactory(display_name="Eve")
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label class="visually-hidden" for="composer-input">Message</label>' in html
    assert 'aria-label="Send"' in html
    assert "csrftoken" in response.cookies
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert boot["me"]["id"] == user.pk and boot["websocket"] == "/ws/v1/" and boot["api"] == "/api/v1/"


def test_logged_in_people_skip_the_login_and_register_pages(client):
    client.force_login(UserFactory())
    assert client.get("/login/")["Location"] == "/"
    assert client.get("/register/")["Location"] == "/"


# --- registration --------------------------------------------------------------------------


def test_register_creates_the_account_and_logs_in_without_a_device_token(client):
    response, data = register(client, phone_number="+1 202-555-0177")
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(phone_number="+12025550177")
    assert user.display_name == "Dora Explorer" and user.check_password(PASSWORD)
    assert not Device.objects.filter(user=user).exists()
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me").json()["id"] == user.pk


def test_register_reports_a_taken_phone_number_on_its_field(client):
    taken = UserFactory()
    response, _ = register(client, phone_number=taken.phone_number)
    assert response.status_code == 400
    html = response.content.decode()
    assert "already exists" in html and 'aria-invalid="true"' in html
    assert User.objects.filter(phone_number=taken.phone_number).count() == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"phone_number": "12"}, "not a valid phone number"),
        ({"password": "12345678"}, "entirely numeric"),
        ({"password": "short"}, "too short"),
        ({"display_name": ""}, "This field is required"),
    ],
)
def test_register_rejects_bad_input(client, overrides, expected):
    response, _ = register(client, **overrides)
    assert response.status_code == 400
    assert expected in response.content.decode()
    assert not User.objects.exists()


def test_register_keeps_what_was_typed_but_never_the_password(client):
    response, _ = register(client, phone_number="12", display_name="Frank")
    html = response.content.decode()
    assert 'value="12"' in html and 'value="Frank"' in html
    assert PASSWORD not in html


# --- login and logout --------------------------------------------------------------------------


def test_login_with_the_right_password(client):
    user = UserFactory()
    response = client.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/api/v1/me").json()["id"] == user.pk
    assert not Device.objects.filter(user=user).exists()


def test_login_follows_a_local_next_but_not_another_site(client):
    user = UserFactory()
    local = client.post("/login/?next=/api/docs/", {"phone_number": user.phone_number, "password": PASSWORD, "next": "/api/docs/"})
    assert local["Location"] == "/api/docs/"
    client.logout()
    away = client.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD, "next": "https://evil.example/"})
    assert away["Location"] == "/"


def test_login_with_a_wrong_password(client):
    user = UserFactory()
    response = client.post("/login/", {"phone_number": user.phone_number, "password": "not it"})
    assert response.status_code == 400
    assert "Phone number or password is wrong." in response.content.decode()
    assert client.get("/")["Location"] == "/login/"


def test_login_of_an_inactive_account_fails(client):
    user = UserFactory(is_active=False)
    response = client.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD})
    assert response.status_code == 400


def test_logout_needs_post_and_ends_the_session(client):
    client.force_login(UserFactory())
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/")["Location"] == "/login/"


# --- CSRF --------------------------------------------------------------------------------------


def test_login_without_csrf_token_is_refused(csrf_client):
    user = UserFactory()
    response = csrf_client.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD})
    assert response.status_code == 403


def test_login_with_csrf_token_works(csrf_client):
    user = UserFactory()
    token = csrf_token_from(csrf_client.get("/login/"))
    response = csrf_client.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD,
                                            "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_register_and_logout_without_csrf_token_are_refused(csrf_client):
    response, _ = register(csrf_client)
    assert response.status_code == 403
    assert not User.objects.exists()
    csrf_client.force_login(UserFactory())
    assert csrf_client.post("/logout/").status_code == 403


def test_session_api_calls_need_the_csrf_header(csrf_client):
    user = UserFactory()
    csrf_client.force_login(user)
    page = csrf_client.get("/")
    token = page.cookies["csrftoken"].value
    body = json.dumps({"display_name": "Changed"})
    refused = csrf_client.patch("/api/v1/me", body, content_type="application/json")
    assert refused.status_code == 403
    accepted = csrf_client.patch("/api/v1/me", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200 and accepted.json()["display_name"] == "Changed"


# --- Content-Security-Policy and escaping ------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/register/", "/", "/api/docs/"])
def test_pages_forbid_inline_scripts(client, path):
    if path == "/":
        client.force_login(UserFactory())
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip()
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        # Every script is a file (src=...) or inert data (type="application/json"); none is inline code.
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_api_docs_script_is_served_as_a_file(client):
    html = client.get("/api/docs/").content.decode()
    script = re.search(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html)
    assert script, html
    response = client.get(script.group(1).replace("&amp;", "&"))
    assert response.status_code == 200 and "javascript" in response["Content-Type"]
    assert "SwaggerUIBundle" in response.content.decode()


def test_display_names_are_escaped_in_pages(client):
    user = UserFactory(display_name='<script>alert("x")</script>')
    client.force_login(user)
    html = client.get("/").content.decode()
    assert '<script>alert("x")</script>' not in html
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert boot["me"]["display_name"] == '<script>alert("x")</script>'


def test_form_values_are_escaped(client):
    response, _ = register(client, phone_number='"><script>alert(1)</script>')
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def test_chat_page_lists_who_the_person_blocked(client):
    user, other = UserFactory(), UserFactory()
    people.block_user(blocker=user, user_id=other.pk)
    client.force_login(user)
    html = client.get("/").content.decode()
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert boot["blocked"] == [other.pk]


def test_static_files_are_served(client):
    for path in ("/static/frontdesk/app.css", "/static/frontdesk/js/chat.js", "/static/frontdesk/js/auth.js"):
        response = client.get(path)
        assert response.status_code == 200, path
