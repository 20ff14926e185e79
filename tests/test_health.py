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
