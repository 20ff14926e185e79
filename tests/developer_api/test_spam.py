"""Anti-spam: reporting apps (POST /api/v1/reports), the threshold that suspends an app's keys on its
own pending review, blocking an app, and reinstatement."""

import pytest

from developer_api.models import AuditLog, DeveloperApp, SpamReport
from developer_api.services import apps
from storage.models import Block
from tests.developer_api.helpers import app_client, text
from tests.factories import api_user

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/reports"


def messaged_reporter(app, client):
    """A user the app has messaged, with a client API session: (user, client)."""
    user, user_client = api_user()
    apps.opt_in(app=app, user=user)
    assert client.post("/developer/v1/messages", text(user.phone_number, "BUY NOW")).status_code == 201
    return user, user_client


def test_a_user_reports_an_app_that_messaged_them():
    app, client = app_client()
    user, user_client = messaged_reporter(app, client)

    response = user_client.post(REPORTS, {"app_id": app.pk, "reason": "Unwanted ads"})
    again = user_client.post(REPORTS, {"user_id": app.bot_id, "reason": "Again"})

    assert response.status_code == 201
    assert response.json()["app_id"] == app.pk and response.json()["status"] == "open"
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"]  # one person, one report
    assert SpamReport.objects.count() == 1


def test_only_someone_the_app_messaged_can_report_it():
    app, _ = app_client()
    _, stranger = api_user()

    response = stranger.post(REPORTS, {"app_id": app.pk})

    assert response.status_code == 403 and not SpamReport.objects.exists()


def test_only_apps_can_be_reported():
    person, _ = api_user()
    _, user_client = api_user()

    assert user_client.post(REPORTS, {"user_id": person.pk}).status_code == 404
    assert user_client.post(REPORTS, {"reason": "no target"}).status_code == 400
    assert user_client.post(REPORTS, {"app_id": 1, "user_id": 2}).status_code == 400


def test_reporting_can_also_block_the_app():
    app, client = app_client()
    user, user_client = messaged_reporter(app, client)

    user_client.post(REPORTS, {"app_id": app.pk, "block": True})

    assert Block.objects.filter(blocker=user, blocked=app.bot).exists()
    failed = client.post("/developer/v1/messages", text(user.phone_number)).json()["messages"][0]
    assert failed["status"] == "failed"


def test_reports_over_the_threshold_suspend_the_app_pending_review(developer_settings):
    developer_settings(SPAM_REPORT_THRESHOLD=3)
    app, client = app_client()
    reporters = [messaged_reporter(app, client) for _ in range(3)]

    for _, user_client in reporters[:2]:
        user_client.post(REPORTS, {"app_id": app.pk})
        user_client.post(REPORTS, {"app_id": app.pk})  # reporting twice counts once
    app.refresh_from_db()
    assert app.status == "active"

    reporters[2][1].post(REPORTS, {"app_id": app.pk})

    app.refresh_from_db()
    assert app.status == "suspended" and app.needs_review
    refused = client.post("/developer/v1/messages", text(reporters[0][0].phone_number))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "app_suspended"
    entry = AuditLog.objects.get(action="app_auto_suspended")
    assert entry.actor is None and entry.target_id == str(app.pk)


def test_reinstating_an_app_dismisses_the_reports_and_counting_starts_again(developer_settings, admin_user):
    developer_settings(SPAM_REPORT_THRESHOLD=2)
    app, client = app_client()
    reporters = [messaged_reporter(app, client) for _ in range(3)]
    for _, user_client in reporters[:2]:
        user_client.post(REPORTS, {"app_id": app.pk})
    app.refresh_from_db()
    assert app.status == "suspended"

    apps.reinstate_app(app=app, actor=admin_user)

    app.refresh_from_db()
    assert app.status == "active" and not app.needs_review
    assert set(SpamReport.objects.values_list("status", flat=True)) == {"dismissed"}
    reporters[2][1].post(REPORTS, {"app_id": app.pk})
    assert DeveloperApp.objects.get(pk=app.pk).status == "active"  # one new report, threshold two
    # Someone whose report was dismissed may report again.
    reporters[0][1].post(REPORTS, {"app_id": app.pk})
    assert DeveloperApp.objects.get(pk=app.pk).status == "suspended"
