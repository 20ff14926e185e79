"""An operator suspending a person in the admin closes every open websocket of theirs at once,
those of browser sessions too, not at the next periodic re-check."""

import pytest
from django.test import Client
from django.urls import reverse

from storage.models import User
from tests.factories import UserFactory, direct_conversation
from tests.ws import browser_login, db, logged_in_browser, people, sockets  # noqa: F401


def operator_posts(url: str, data: dict) -> int:
    operator = Client()
    operator.force_login(UserFactory(is_staff=True, is_superuser=True))
    return operator.post(url, data).status_code


@pytest.mark.django_db(transaction=True)
async def test_suspending_a_user_closes_their_browser_sockets_at_once(sockets):
    (alice, alice_token), _ = await people(2)
    headers, _ = await db(browser_login)(alice)
    page = await sockets(headers=headers)
    phone = await sockets(alice_token)

    status = await db(operator_posts)(reverse("admin:storage_user_changelist"),
                                      {"action": "suspend_users", "_selected_action": [str(alice.pk)]})

    assert status == 302
    for socket in (phone, page):
        assert await socket.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
        assert await socket.receive_close() == 4001


@pytest.mark.django_db(transaction=True)
async def test_deactivating_a_user_in_their_form_suspends_them(sockets):
    """Unticking "active" on the user's page is a suspension too: logged out everywhere at once."""
    from developer_api.models import AuditLog
    from storage.models import Device

    (alice, alice_token), _ = await people(2)
    phone = await sockets(alice_token)

    status = await db(operator_posts)(reverse("admin:storage_user_change", args=[alice.pk]),
                                      {"phone_number": alice.phone_number, "display_name": alice.display_name,
                                       "about": ""})  # is_active unticked

    assert status == 302
    assert await phone.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
    assert await phone.receive_close() == 4001
    assert not await db(lambda: User.objects.get(pk=alice.pk).is_active)()
    assert not await db(lambda: Device.objects.filter(user_id=alice.pk).exists())()
    assert await db(lambda: AuditLog.objects.filter(action="user_suspended", target_id=str(alice.pk)).exists())()


@pytest.mark.django_db(transaction=True)
async def test_deleting_a_device_in_the_admin_logs_it_out_at_once(sockets):
    """An operator deleting a stolen device's row: its open websocket is told and closed, as at
    logout, not left receiving messages until the periodic re-check."""
    from developer_api.models import AuditLog
    from storage.models import Device

    (alice, alice_token), _ = await people(2)
    phone = await sockets(alice_token)
    device = await db(lambda: Device.objects.get(user_id=alice.pk))()

    status = await db(operator_posts)(reverse("admin:storage_device_delete", args=[device.pk]), {"post": "yes"})

    assert status == 302
    assert await phone.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
    assert await phone.receive_close() == 4001
    assert not await db(lambda: Device.objects.filter(pk=device.pk).exists())()
    assert await db(lambda: AuditLog.objects.filter(action="device_deleted", target_id=str(device.pk)).exists())()


NEW_PASSWORD = {"usable_password": "true", "password1": "set by an operator 7", "password2": "set by an operator 7"}


@pytest.mark.django_db(transaction=True)
async def test_an_operator_setting_a_password_closes_that_persons_browser_pages_at_once(sockets):
    """The new hash ends the person's browser sessions: their open pages stop receiving now, not at
    their next frame or within the minute of the periodic check."""
    ((alice, _),) = await people(1)
    headers, _ = await db(browser_login)(alice)
    page = await sockets(headers=headers)

    status = await db(operator_posts)(reverse("admin:auth_user_password_change", args=[alice.pk]), NEW_PASSWORD)

    assert status == 302
    assert await page.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
    assert await page.receive_close() == 4001


@pytest.mark.django_db(transaction=True)
async def test_an_operator_setting_their_own_password_keeps_this_session_and_closes_their_others(sockets):
    (bob, bob_token), = await people(1)
    operator = await db(lambda: UserFactory(is_staff=True, is_superuser=True))()
    chat = await db(direct_conversation)(operator, bob)
    here, here_headers, _ = await db(logged_in_browser)(operator)
    _, elsewhere_headers, _ = await db(logged_in_browser)(operator)
    this_page, other_page = await sockets(headers=here_headers), await sockets(headers=elsewhere_headers)
    b = await sockets(bob_token)

    response = await db(lambda: here.post(reverse("admin:auth_user_password_change", args=[operator.pk]),
                                          NEW_PASSWORD))()

    assert response.status_code == 302
    assert await other_page.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
    assert await other_page.receive_close() == 4001
    message = await b.send_message(chat.pk, "the operator's own page still hears this")
    assert "session.revoked" not in [event["type"] for event in await this_page.receive_until_new(message)]


@pytest.mark.django_db(transaction=True)
async def test_an_operator_setting_a_password_logs_that_persons_devices_out(sockets):
    """An operator resets a taken-over account: the phone that held the old password is out too."""
    from developer_api.models import AuditLog
    from storage.models import Device

    ((alice, alice_token),) = await people(1)
    phone = await sockets(alice_token)

    status = await db(operator_posts)(reverse("admin:auth_user_password_change", args=[alice.pk]), NEW_PASSWORD)

    assert status == 302
    assert await phone.receive_type("session.revoked", timeout=10) == {"type": "session.revoked"}
    assert await phone.receive_close() == 4001
    assert not await db(lambda: Device.objects.filter(user=alice).exists())()
    assert await db(lambda: AuditLog.objects.filter(action="user_password_changed", target_id=str(alice.pk)).exists())()
