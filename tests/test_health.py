"""GET /healthz: what a load balancer or `docker compose` health check asks."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_healthz_answers_200_with_the_database_state_and_needs_no_login(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": {"status": "ok", "vendor": connection.vendor}}


class _UnreachableDatabase:
    vendor = "postgresql"

    def cursor(self):
        raise ConnectionRefusedError("the database is down")


def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch):
    monkeypatch.setattr("frontdesk.views.connection", _UnreachableDatabase())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "database": {"status": "error", "vendor": "postgresql", "error": "ConnectionRefusedError"},
    }


def test_a_load_balancer_probing_by_address_over_plain_http_gets_its_answer(client, settings):
    """As deployed (ALLOWED_HOSTS=chat.example.com, MESSENGER_HTTPS=1), a probe sends the server's
    address as Host over plain HTTP; anything but /healthz is still refused for that Host."""
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client.get("/healthz", HTTP_HOST="10.0.0.5:8001")

    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert client.get("/api/v1/me", HTTP_HOST="10.0.0.5:8001").status_code == 400
    assert client.get("/healthz", HTTP_HOST="chat.example.com").status_code == 200
    assert client.get("/login/", HTTP_HOST="chat.example.com").status_code == 301  # to HTTPS
