"""Operators in the Django admin: lists with search and filters, and the actions (approve commercial
use, revoke a key, suspend and reinstate an app, suspend a user, resend a webhook), each audited."""

import pytest
from django.urls import reverse

from developer_api.models import (
    ApiKey,
    AuditLog,
    CommercialRequest,
    DeveloperApp,
    SpamReport,
    WebhookDelivery,
)
from developer_api.services import apps, usage
from storage.models import Device, User
from tests.developer_api.app_schema import AppClient
from tests.developer_api.helpers import make_app, make_key
from tests.factories import api_user, direct_conversation, user_with_token

pytestmark = pytest.mark.django_db


def act(operator, model: str, action: str, ids: list[int]):
    """Run an admin action on the change list, as the operator's browser does."""
    name = "storage_user" if model == "user" else f"developer_api_{model}"
    url = reverse(f"admin:{name}_changelist")
    response = operator.post(url, {"action": action, "_selected_action": [str(pk) for pk in ids]})
    assert response.status_code == 302, response.content[:500]
    return response


def audited(action: str) -> AuditLog:
    return AuditLog.objects.get(action=action)


@pytest.mark.parametrize("model", ["developerapp", "apikey", "commercialrequest", "monthlyusage", "outboundmessage",
                                   "optin", "spamreport", "webhookdelivery", "auditlog"])
def test_every_list_loads_with_search_and_filters(operator, model):
    app = make_app(name="Findable")
    make_key(app)
    url = reverse(f"admin:developer_api_{model}_changelist")

    assert operator.get(url).status_code == 200
    assert operator.get(url, {"q": "Findable"}).status_code == 200


def test_apps_are_found_by_name_and_filtered_by_tier(operator):
    make_app(name="Ride share")
    commercial = make_app(name="Shop")
    DeveloperApp.objects.filter(pk=commercial.pk).update(tier="commercial")
    url = reverse("admin:developer_api_developerapp_changelist")

    found = operator.get(url, {"q": "ride"}).content.decode()
    filtered = operator.get(url, {"tier__exact": "commercial"}).content.decode()

    assert "Ride share" in found and "Shop" not in found
    assert "Shop" in filtered and "Ride share" not in filtered


def test_an_app_page_shows_its_usage_report(operator):
    app = make_app()
    usage.count_message(app=app, billable=False)

    page = operator.get(reverse("admin:developer_api_developerapp_change", args=[app.pk])).content.decode()

    assert "usage (last 12 months)" in page.lower() and usage.month_of().strftime("%Y-%m") in page


def test_approving_a_commercial_request(operator, admin_user):
    app = make_app()
    request = apps.request_commercial(app=app, use_description="Order updates")

    act(operator, "commercialrequest", "approve", [request.pk])

    assert DeveloperApp.objects.get(pk=app.pk).tier == "commercial"
    request.refresh_from_db()
    assert request.status == "approved" and request.decided_by == admin_user
    entry = audited("commercial_approved")
    assert entry.actor == admin_user and entry.target_id == str(app.pk)


def test_refusing_a_commercial_request(operator):
    app = make_app()
    request = apps.request_commercial(app=app, use_description="?")

    act(operator, "commercialrequest", "refuse", [request.pk])

    assert CommercialRequest.objects.get(pk=request.pk).status == "refused"
    assert DeveloperApp.objects.get(pk=app.pk).tier == "free"
    assert audited("commercial_refused")


def test_revoking_a_key(operator, admin_user):
    app = make_app()
    key, raw = make_key(app)

    act(operator, "apikey", "revoke_keys", [key.pk])

    assert AppClient(raw).get("/developer/v1/app").status_code == 401
    entry = audited("key_revoked")
    assert entry.actor == admin_user and entry.target_type == "developer_api.ApiKey"


def test_suspending_and_reinstating_an_app(operator, admin_user):
    app = make_app()
    _, raw = make_key(app)

    act(operator, "developerapp", "suspend_apps", [app.pk])
    assert AppClient(raw).get("/developer/v1/app").json()["error"]["code"] == "app_suspended"

    act(operator, "developerapp", "reinstate_apps", [app.pk])
    assert AppClient(raw).get("/developer/v1/app").status_code == 200
    assert [e.action for e in AuditLog.objects.order_by("created_at", "id")] == ["app_suspended", "app_reinstated"]
    assert {e.actor for e in AuditLog.objects.all()} == {admin_user}


def test_revoking_every_key_of_an_app(operator):
    app = make_app()
    make_key(app)
    make_key(app)

    act(operator, "developerapp", "revoke_all_keys", [app.pk])

    assert not ApiKey.objects.filter(revoked_at__isnull=True).exists()
    assert AuditLog.objects.filter(action="key_revoked").count() == 2


def test_upholding_spam_reports_keeps_the_app_suspended(operator):
    from tests.factories import UserFactory

    app = make_app()
    SpamReport.objects.create(app=app, reporter=UserFactory())

    act(operator, "spamreport", "uphold", list(SpamReport.objects.values_list("pk", flat=True)))

    app.refresh_from_db()
    assert app.status == "suspended" and set(SpamReport.objects.values_list("status", flat=True)) == {"upheld"}
    assert audited("reports_upheld")


def test_suspending_a_user_logs_them_out_everywhere(operator, admin_user):
    from tests.factories import PASSWORD
    from tests.openapi import SchemaCheckedClient

    user, token = user_with_token()

    act(operator, "user", "suspend_users", [user.pk])

    user.refresh_from_db()
    assert not user.is_active and not Device.objects.filter(user=user).exists()
    assert SchemaCheckedClient(token).get("/api/v1/me").status_code == 401
    login = SchemaCheckedClient().post("/api/v1/auth/login", {"phone_number": user.phone_number, "password": PASSWORD})
    assert login.status_code in (401, 429)
    assert audited("user_suspended").target_id == str(user.pk)

    act(operator, "user", "reinstate_users", [user.pk])
    assert User.objects.get(pk=user.pk).is_active and audited("user_reinstated")


def test_an_operator_removes_an_offensive_profile_photo(operator, admin_user, settings, tmp_path,
                                                       django_capture_on_commit_callbacks):
    from broker.services import accounts
    from broker.services import media as media_service
    from storage.models import Media
    from tests import media_samples as samples

    settings.MEDIA_ROOT = str(tmp_path / "media")
    user, client = api_user()
    photo = media_service.upload(uploader=user, file=samples.uploaded(samples.image_bytes(), "photo.png"))
    accounts.update_profile(user=user, photo_media_id=photo.pk)
    page = operator.get(reverse("admin:storage_user_change", args=[user.pk]))
    assert page.status_code == 200 and str(photo) in page.content.decode()  # shown, read-only

    with django_capture_on_commit_callbacks(execute=True):
        act(operator, "user", "remove_photos", [user.pk])

    assert client.get("/api/v1/me").json()["photo"] is None
    assert not Media.objects.filter(pk=photo.pk).exists()
    entry = audited("user_photo_removed")
    assert (entry.target_id, entry.detail, entry.actor) == (str(user.pk), {"media": photo.pk}, admin_user)


def test_an_operator_removes_an_offensive_group_photo_and_the_members_are_told(
        operator, admin_user, settings, tmp_path, django_capture_on_commit_callbacks):
    from broker.services import conversations
    from broker.services import media as media_service
    from storage.models import Media
    from tests import media_samples as samples
    from tests.factories import group_conversation

    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, _ = api_user()
    bob, bob_client = api_user()
    group = group_conversation(alice, bob)
    photo = media_service.upload(uploader=alice, file=samples.uploaded(samples.image_bytes(), "photo.png"))
    conversations.set_group_photo(actor=alice, conversation_id=group.pk, photo_media_id=photo.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(reverse("admin:storage_conversation_changelist"),
                                 {"action": "remove_group_photos", "_selected_action": [str(group.pk)]})

    assert response.status_code == 302
    seen = bob_client.get(f"/api/v1/conversations/{group.pk}").json()
    assert seen["photo"] is None
    assert seen["last_message"]["text"] == "A moderator removed the group photo"
    assert seen["last_message"]["event"] == {"action": "group_photo_changed", "by": None, "photo": None}
    assert not Media.objects.filter(pk=photo.pk).exists()
    assert audited("group_photo_removed").detail == {"media": photo.pk, "seq": seen["last_seq"]}


def test_an_operator_cannot_suspend_themselves(operator, admin_user):
    act(operator, "user", "suspend_users", [admin_user.pk])

    assert User.objects.get(pk=admin_user.pk).is_active


def test_resending_a_webhook_event(operator, admin_user):
    app = make_app()
    delivery = WebhookDelivery.objects.create(app=app, conversation_id=1, event="message", body="{}",
                                              status="failed", attempts=30)

    act(operator, "webhookdelivery", "resend", [delivery.pk])

    delivery.refresh_from_db()
    assert delivery.status == "pending" and audited("webhook_resent").actor == admin_user


def test_edits_through_the_forms_are_audited(operator, admin_user):
    app = make_app(name="Before")
    url = reverse("admin:developer_api_developerapp_change", args=[app.pk])

    response = operator.post(url, {
        "owner": app.owner_id, "name": "After", "description": "", "tier": "free", "status": "active",
        "suspended_reason": "", "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0",
        "commercial_requests-TOTAL_FORMS": "0", "commercial_requests-INITIAL_FORMS": "0",
    })

    assert response.status_code == 302, response.content[:1000]
    entry = audited("developerapp_changed")
    assert entry.actor == admin_user and entry.detail["fields"] == {"name": "After"}


def test_tier_and_suspension_change_only_through_the_actions(operator):
    """The form would skip what the actions do: the audit entry of a tier change, a suspension's
    time, a reinstatement's dismissal of the spam reports."""
    app = make_app(name="Shop")
    url = reverse("admin:developer_api_developerapp_change", args=[app.pk])

    response = operator.post(url, {
        "owner": app.owner_id, "name": "Shop", "description": "", "tier": "commercial", "status": "suspended",
        "suspended_reason": "by hand", "needs_review": "on", "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0",
        "commercial_requests-TOTAL_FORMS": "0", "commercial_requests-INITIAL_FORMS": "0",
    })

    assert response.status_code == 302, response.content[:1000]
    app.refresh_from_db()
    assert (app.tier, app.status, app.suspended_reason, app.needs_review) == ("free", "active", "", False)


def test_renaming_an_app_in_the_admin_renames_its_account(operator):
    app = make_app(name="Before", description="Old")
    url = reverse("admin:developer_api_developerapp_change", args=[app.pk])

    response = operator.post(url, {
        "owner": app.owner_id, "name": "After", "description": "Answers orders", "tier": "free",
        "status": "active", "suspended_reason": "", "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0",
        "commercial_requests-TOTAL_FORMS": "0", "commercial_requests-INITIAL_FORMS": "0",
    })

    assert response.status_code == 302, response.content[:1000]
    _, user_client = api_user()
    account = user_client.get(f"/api/v1/apps/{app.pk}").json()["bot"]  # what a user sees of the app
    assert (account["display_name"], account["about"]) == ("After", "Answers orders")


def test_deleting_users_is_audited(operator, admin_user):
    one, two, three = (user_with_token()[0] for _ in range(3))

    deleted = operator.post(reverse("admin:storage_user_delete", args=[one.pk]), {"post": "yes"})
    selected = operator.post(reverse("admin:storage_user_changelist"), {
        "action": "delete_selected", "_selected_action": [str(two.pk), str(three.pk)], "post": "yes",
    })

    assert deleted.status_code == 302 and selected.status_code == 302
    assert not User.objects.filter(pk__in=[one.pk, two.pk, three.pk]).exists()
    entries = AuditLog.objects.filter(action="user_deleted")
    assert sorted(int(entry.target_id) for entry in entries) == sorted([one.pk, two.pk, three.pk])
    assert {entry.actor for entry in entries} == {admin_user}


def test_setting_a_password_in_the_admin_is_audited(operator, admin_user):
    from tests.openapi import SchemaCheckedClient

    user, _ = user_with_token()
    new_password = "a fresh passphrase 7"

    response = operator.post(reverse("admin:auth_user_password_change", args=[user.pk]), {
        "usable_password": "true", "password1": new_password, "password2": new_password,
    })

    assert response.status_code == 302
    login = SchemaCheckedClient().post("/api/v1/auth/login", {"phone_number": user.phone_number,
                                                               "password": new_password})
    assert login.status_code == 200
    entry = audited("user_password_changed")
    assert entry.actor == admin_user and entry.target_id == str(user.pk)
    assert new_password not in str(entry.detail) and entry.detail == {"password_login": True}


def test_a_refused_password_form_writes_no_audit_entry(operator):
    user, _ = user_with_token()

    response = operator.post(reverse("admin:auth_user_password_change", args=[user.pk]), {
        "usable_password": "true", "password1": "one passphrase 7", "password2": "another passphrase 7",
    })

    assert response.status_code == 200  # the form again, with its error
    assert not AuditLog.objects.filter(action="user_password_changed").exists()


def test_the_audit_log_cannot_be_edited(operator):
    apps.suspend_app(app=make_app(), actor=None, reason="x")
    entry = AuditLog.objects.get()

    assert operator.get(reverse("admin:developer_api_auditlog_changelist")).status_code == 200
    deleting = operator.post(reverse("admin:developer_api_auditlog_delete", args=[entry.pk]), {"post": "yes"})
    assert deleting.status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_a_deleted_app_leaves_no_account_anyone_can_still_find_or_write_to(operator):
    app = make_app()
    bot = app.bot
    person, client = api_user()
    direct_conversation(person, bot)  # the app had written to them: they know its account

    response = operator.post(reverse("admin:developer_api_developerapp_delete", args=[app.pk]), {"post": "yes"})

    assert response.status_code == 302
    bot.refresh_from_db()
    assert not bot.is_active  # it was left active: an app's account with no app behind it
    found = client.post("/api/v1/conversations", {"kind": "direct", "user_id": bot.pk}, format="json")
    assert found.status_code == 404
