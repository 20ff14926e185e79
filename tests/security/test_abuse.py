"""Abuse: login and registration throttles (REST and the browser forms), the limit on looking up
phone numbers nobody uses, password hashing, sessions and CSRF, security headers, the websocket's
Origin check, and the production settings passing `manage.py check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import make_password
from django.test import Client, override_settings

import messenger.settings as production_settings
from storage.models import Contact, Conversation, User
from tests.factories import PASSWORD, UserFactory, api_user
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
CONTACTS = "/api/v1/contacts"
CONVERSATIONS = "/api/v1/conversations"

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    """Small throttles for these tests (conftest raises them for everyone else)."""
    settings.MESSENGER = {
        **settings.MESSENGER, "LOGIN_RATE_PER_IP": 6, "LOGIN_FAILURES_PER_PHONE": 3,
        "REGISTER_RATE_PER_IP": 3, "REGISTER_RATE_PER_PHONE": 2, "LOOKUP_MISSES_PER_USER": 3,
        "LOOKUPS_PER_USER": 8,
        # Fixed windows: long ones, so that no window ends halfway through a test.
        "LOGIN_WINDOW": 10**8, "REGISTER_WINDOW": 10**8, "LOOKUP_WINDOW": 10**8,
    }
    return settings.MESSENGER


def api_login(phone: str, password: str, ip: str = "10.0.0.1"):
    return SchemaCheckedClient(REMOTE_ADDR=ip).post("/api/v1/auth/login", {"phone_number": phone, "password": password})


def api_register(phone: str, ip: str = "10.0.0.1"):
    return SchemaCheckedClient(REMOTE_ADDR=ip).post(
        "/api/v1/auth/register", {"phone_number": phone, "password": PASSWORD, "display_name": "New"}
    )


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["retry_after"] == int(response["Retry-After"])


# --- login and registration throttles -------------------------------------------------------------
def test_wrong_passwords_lock_the_phone_number_even_for_the_right_password(limits):
    user = UserFactory()
    for n in range(3):  # from different addresses: the per-number limit holds across them
        assert api_login(user.phone_number, "wrong password", ip=f"10.0.1.{n}").status_code == 401

    assert_rate_limited(api_login(user.phone_number, PASSWORD, ip="10.0.1.99"))
    other = UserFactory()
    assert api_login(other.phone_number, PASSWORD, ip="10.0.1.99").status_code == 200


def test_login_attempts_are_limited_per_address(limits):
    users = [UserFactory() for _ in range(7)]
    answers = [api_login(u.phone_number, PASSWORD, ip="10.0.2.1").status_code for u in users]

    assert answers == [200] * 6 + [429]
    assert api_login(users[-1].phone_number, PASSWORD, ip="10.0.2.2").status_code == 200


def test_registration_is_limited_per_address_and_per_phone_number(limits):
    statuses = [api_register(f"+1212555{n:04d}", ip="10.0.3.1").status_code for n in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert_rate_limited(api_register("+12125550100", ip="10.0.3.1"))
    assert User.objects.filter(phone_number="+12125550100").count() == 0

    # Probing one number from many addresses: conflict, conflict, then throttled.
    taken = "+12125550000"
    probes = [api_register(taken, ip=f"10.0.4.{n}").status_code for n in range(3)]
    assert probes == [409, 429, 429]


def test_an_ipv6_network_counts_as_one_address(limits):
    """A host is given a whole /64 of IPv6 addresses: were each address counted alone, it would
    register or try logins without limit by changing the last 64 bits."""
    network = "2001:db8:1:2"
    statuses = [api_register(f"+1212557{n:04d}", ip=f"{network}::{n + 1:x}").status_code for n in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert api_register("+12125570010", ip=f"{network}:ffff:ffff:ffff:ffff").status_code == 429
    assert api_register("+12125570011", ip="2001:db8:1:3::1").status_code == 201  # another network

    users = [UserFactory() for _ in range(7)]
    answers = [api_login(u.phone_number, PASSWORD, ip=f"2001:db8:9:9:{n:x}::1").status_code
               for n, u in enumerate(users)]
    assert answers == [200] * 6 + [429]


def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(limits):
    statuses = [api_register(f"+1212558{n:04d}", ip="10.0.6.1" if n % 2 else "::ffff:10.0.6.1").status_code
                for n in range(4)]
    assert statuses == [201, 201, 201, 429]


def test_the_browser_forms_are_throttled_too(limits):
    user = UserFactory()
    browser = Client(REMOTE_ADDR="10.0.5.1")
    for _ in range(3):
        assert browser.post("/login/", {"phone_number": user.phone_number, "password": "wrong password"}).status_code == 400
    refused = browser.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "_auth_user_id" not in browser.session

    registrar = Client(REMOTE_ADDR="10.0.5.2")
    codes = [registrar.post("/register/", {"phone_number": f"+1212555{n:04d}", "display_name": "N",
                                           "password": PASSWORD}).status_code for n in range(10, 14)]
    assert codes == [302, 302, 302, 429]


def test_the_admin_login_is_throttled_as_the_others(limits):
    """The admin's own login form checked passwords with no limit: staff accounts, the ones most
    worth having, could be guessed at without end, and its wrong guesses locked nothing."""
    staff = UserFactory(is_staff=True)
    guesser = Client(REMOTE_ADDR="10.0.7.1")
    for n in range(3):
        page = guesser.post("/admin/login/", {"username": staff.phone_number, "password": f"guess {n}"})
        assert page.status_code == 200 and "_auth_user_id" not in guesser.session

    # The number is locked, for the right password too, here and on every other login.
    refused = guesser.post("/admin/login/", {"username": staff.phone_number, "password": PASSWORD})
    assert "_auth_user_id" not in guesser.session
    assert "Too many wrong passwords" in refused.content.decode()
    assert_rate_limited(api_login(staff.phone_number, PASSWORD, ip="10.0.7.2"))

    # And per address: 6 attempts, whatever the numbers.
    sprayer = Client(REMOTE_ADDR="10.0.7.3")
    others = [UserFactory(is_staff=True) for _ in range(7)]
    logged_in = []
    for other in others:
        sprayer.post("/admin/login/", {"username": other.phone_number, "password": PASSWORD})
        logged_in.append("_auth_user_id" in sprayer.session)
        sprayer.cookies.clear()
    assert logged_in == [True] * 6 + [False]


def test_the_admin_login_still_refuses_people_who_are_not_staff(limits):
    person = UserFactory()
    browser = Client(REMOTE_ADDR="10.0.7.4")

    page = browser.post("/admin/login/", {"username": person.phone_number, "password": PASSWORD})

    assert page.status_code == 200 and "_auth_user_id" not in browser.session
    assert "for a staff account" in page.content.decode()


# --- looking people up by phone number ---------------------------------------------------------------
def test_looking_up_numbers_nobody_uses_is_limited_per_user(limits):
    _, prober = api_user()
    friends = [UserFactory() for _ in range(5)]
    for friend in friends:  # numbers people use do not count: adding the people you know never runs out
        assert prober.post(CONTACTS, {"phone_number": friend.phone_number}).status_code == 201

    misses = [prober.post(CONTACTS, {"phone_number": "+12125550600"}).status_code,
              prober.post(CONVERSATIONS, {"kind": "direct", "phone_number": "+12125550601"}).status_code,
              prober.post(CONTACTS, {"phone_number": "+12125550602"}).status_code]

    assert misses == [404, 404, 404]
    assert_rate_limited(prober.post(CONTACTS, {"phone_number": "+12125550603"}))
    # Now a number someone uses is refused too, so the answers tell the prober nothing more.
    someone = UserFactory()
    assert_rate_limited(prober.post(CONTACTS, {"phone_number": someone.phone_number}))
    assert_rate_limited(prober.post(CONVERSATIONS, {"kind": "direct", "phone_number": someone.phone_number}))
    assert not Contact.objects.filter(contact=someone).exists() and not Conversation.objects.exists()
    # The limit is the prober's own.
    _, neighbour = api_user()
    assert neighbour.post(CONTACTS, {"phone_number": someone.phone_number}).status_code == 201


def test_looking_up_numbers_people_use_is_limited_too_more_loosely(limits):
    """Someone holding a list of numbers people use (a leaked one) learns whose each is from the
    answers without a single miss: every lookup counts against a looser limit."""
    _, scraper = api_user()
    known = [UserFactory() for _ in range(9)]

    found = [scraper.post(CONTACTS, {"phone_number": person.phone_number}).status_code for person in known[:8]]

    assert found == [201] * 8
    assert_rate_limited(scraper.post(CONTACTS, {"phone_number": known[8].phone_number}))
    assert_rate_limited(scraper.post(CONVERSATIONS, {"kind": "direct", "phone_number": known[8].phone_number}))
    assert not Contact.objects.filter(contact=known[8]).exists()
    # People the scraper has found stay reachable by id, which names only people one knows.
    assert scraper.post(CONVERSATIONS, {"kind": "direct", "user_id": known[0].pk}).status_code == 201
    _, neighbour = api_user()
    assert neighbour.post(CONTACTS, {"phone_number": known[8].phone_number}).status_code == 201


# --- passwords --------------------------------------------------------------------------------------
def test_the_production_setting_hashes_passwords_with_argon2():
    assert production_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=production_settings.PASSWORD_HASHERS):
        encoded = make_password("a long passphrase")
        assert encoded.startswith("argon2$argon2id$")
        user = UserFactory()
        user.set_password("a long passphrase")
        user.save()
        assert User.objects.get(pk=user.pk).password.startswith("argon2$")


def test_passwords_are_never_stored_or_returned_in_clear():
    response = SchemaCheckedClient().post("/api/v1/auth/register", {
        "phone_number": "+12125550200", "password": "a long passphrase", "display_name": "Pat"})
    assert response.status_code == 201
    assert "a long passphrase" not in response.content.decode()
    stored = User.objects.get(phone_number="+12125550200").password
    assert "a long passphrase" not in stored and "$" in stored


# --- sessions and CSRF ------------------------------------------------------------------------------
def test_browser_login_needs_a_csrf_token_and_rotates_the_session():
    user = UserFactory()
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD}).status_code == 403

    browser.get("/login/")
    token = browser.cookies[django_settings.CSRF_COOKIE_NAME].value
    browser.cookies[django_settings.SESSION_COOKIE_NAME] = "attacker-chosen-session-key"
    response = browser.post("/login/", {"phone_number": user.phone_number, "password": PASSWORD,
                                        "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    session_cookie = browser.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session_cookie.value != "attacker-chosen-session-key"
    assert session_cookie["httponly"] and session_cookie["samesite"] == "Lax"


def test_the_rest_api_with_a_session_cookie_needs_the_csrf_header():
    user = UserFactory()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/v1/me").status_code == 200  # reading needs no token

    refused = browser.patch("/api/v1/me", {"display_name": "Changed"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    user.refresh_from_db()
    assert user.display_name != "Changed"

    browser.get("/")  # the chat page sets the CSRF cookie
    token = browser.cookies[django_settings.CSRF_COOKIE_NAME].value
    allowed = browser.patch("/api/v1/me", {"display_name": "Changed"}, content_type="application/json",
                            headers={"X-CSRFToken": token})
    assert allowed.status_code == 200


def test_logout_is_post_only_and_ends_the_session():
    user = UserFactory()
    browser = Client()
    browser.force_login(user)
    assert browser.get("/logout/").status_code == 405
    assert browser.post("/logout/").status_code == 302
    assert browser.get("/api/v1/me").status_code == 401


@pytest.mark.django_db(transaction=True)
async def test_browser_logout_closes_that_sessions_sockets_only(sockets):
    (alice, _), (bob, bob_token) = await people(2)

    def logged_in_browser():
        browser = Client()
        browser.force_login(alice)
        return browser

    first, second = await db(logged_in_browser)(), await db(logged_in_browser)()

    def cookie(browser) -> bytes:
        return f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()

    origin = (b"origin", b"http://localhost:8000")
    page1 = await sockets(headers=[(b"cookie", cookie(first)), origin])
    page2 = await sockets(headers=[(b"cookie", cookie(second)), origin])

    assert (await db(first.post)("/logout/")).status_code == 302

    assert await page1.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await page1.receive_close() == 4001
    assert page2.is_open and await page2.nothing_more()


@pytest.mark.django_db(transaction=True)
async def test_a_session_socket_notices_a_lost_logout_event_on_its_next_frame(sockets):
    (alice, _), _ = await people(2)

    def logged_in_browser():
        browser = Client()
        browser.force_login(alice)
        return browser

    browser = await db(logged_in_browser)()
    key = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    page = await sockets(headers=[(b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={key}".encode()),
                                  (b"origin", b"http://localhost:8000")])

    from django.contrib.sessions.models import Session

    await db(lambda: Session.objects.filter(session_key=key).delete())()  # ended; no event published
    await page.send(type="typing", conversation=1)

    assert await page.receive_type("session.revoked") == {"type": "session.revoked"}
    assert await page.receive_close() == 4001


# --- the websocket's Origin check --------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("host", "origin", "allowed"), [
    (b"chat.example.com", b"http://chat.example.com", True),  # same origin as the socket
    (b"localhost:8000", b"http://localhost:8000", True),  # same origin, and trusted
    (b"127.0.0.1:9000", b"http://localhost:8000", True),  # not same origin, but in CSRF_TRUSTED_ORIGINS
    (b"chat.example.com", b"https://chat.example.com", False),  # the scheme differs (socket is ws://)
    (b"chat.example.com", b"http://chat.example.com:8080", False),  # the port differs
    (b"chat.example.com", b"http://evil.example", False),
    (b"localhost:9000", b"http://localhost:9001", False),  # an allowed host, another port
    (b"evil.example", b"http://evil.example", False),  # same origin, but not a host we serve
    (b"chat.example.com", b"null", False),
    (b"chat.example.com", b"http://chat.example.com.evil.example", False),
])
async def test_a_cookie_socket_needs_the_exact_origin(sockets, settings, host, origin, allowed):
    settings.ALLOWED_HOSTS = ["chat.example.com", "localhost", "127.0.0.1"]
    ((alice, _),) = await people(1)

    def cookie():
        browser = Client()
        browser.force_login(alice)
        return f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()

    client = await sockets(headers=[(b"cookie", await db(cookie)()), (b"origin", origin), (b"host", host)])

    if allowed:
        assert await client.nothing_more()
    else:
        error = await client.receive()
        assert (error["type"], error["code"]) == ("error", "authentication_failed")
        assert await client.receive_close() == 4001


# --- security headers -----------------------------------------------------------------------------
def test_pages_and_api_send_the_security_headers():
    user = UserFactory()
    browser = Client()
    for path in ("/login/", "/api/schema/"):
        response = browser.get(path)
        assert response["X-Frame-Options"] == "DENY", path
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path
        assert "Strict-Transport-Security" not in response, path  # not over plain HTTP
    browser.force_login(user)
    page = browser.get("/")
    csp = page["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]


def test_hsts_is_sent_over_https_behind_a_proxy():
    with override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
                           SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), SECURE_SSL_REDIRECT=True):
        browser = Client()
        plain = browser.get("/login/")
        assert plain.status_code == 301 and plain["Location"].startswith("https://")
        secure = browser.get("/login/", headers={"X-Forwarded-Proto": "https"})
        assert secure.status_code == 200
        assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def _production_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="messenger.settings", DEBUG="false", MESSENGER_HTTPS="1",
        SECRET_KEY="x7!Kp2#vQ9@mL4$wN8^rT1&yB6*zC3(dF5)gH0-jS-production-key-of-sufficient-length",
        ALLOWED_HOSTS="chat.example.com", CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        **extra,
    )
    return env


def test_the_production_settings_pass_check_deploy_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=_production_env(MESSENGER_DATA_DIR=str(tmp_path)), capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_check_deploy_flags_production_without_https(tmp_path):
    """The clean bill above is the HTTPS settings' doing, not a silenced check."""
    env = _production_env(MESSENGER_DATA_DIR=str(tmp_path))
    env["MESSENGER_HTTPS"] = "0"
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output, output
