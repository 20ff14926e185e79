"""Operators' admin, as found in an audit: permissions on the actions, odd input, query counts."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from developer_api.models import AuditLog, DeveloperApp, SpamReport
from developer_api.services import apps
from tests.developer_api.helpers import make_app, make_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def staff_client(*codenames: str) -> Client:
    """A staff member with only the given developer_api / storage permissions."""
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def post_action(client, name: str, action: str, ids):
    return client.post(reverse(f"admin:{name}_changelist"),
                       {"action": action, "_selected_action": [str(pk) for pk in ids]})


def test_a_viewer_cannot_run_the_actions():
    app = make_app()
    key, _ = make_key(app)
    request = apps.request_commercial(app=app, use_description="Order updates")
    victim = UserFactory()
    viewer = staff_client("view_developerapp", "view_apikey", "view_commercialrequest", "view_user")

    post_action(viewer, "developer_api_developerapp", "suspend_apps", [app.pk])
    post_action(viewer, "developer_api_developerapp", "make_commercial", [app.pk])
    post_action(viewer, "developer_api_apikey", "revoke_keys", [key.pk])
    post_action(viewer, "developer_api_commercialrequest", "approve", [request.pk])
    post_action(viewer, "storage_user", "suspend_users", [victim.pk])

    app.refresh_from_db(), key.refresh_from_db(), request.refresh_from_db(), victim.refresh_from_db()
    assert (app.status, app.tier) == ("active", "free")
    assert key.revoked_at is None
    assert request.status == "pending"
    assert victim.is_active
    assert not AuditLog.objects.exists()


def test_a_staff_member_who_may_change_keys_revokes_them():
    key, _ = make_key(make_app())
    keeper = staff_client("view_apikey", "change_apikey")

    post_action(keeper, "developer_api_apikey", "revoke_keys", [key.pk])

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditLog.objects.filter(action="key_revoked").exists()


def test_apps_are_not_added_in_the_admin(operator):
    """An app needs its bot account and signing secret, which only apps.create_app makes: the add
    form stored neither (a 500 on the missing bot)."""
    url = reverse("admin:developer_api_developerapp_add")
    form = {"owner": UserFactory().pk, "name": "Made here", "description": "",
            "keys-TOTAL_FORMS": 0, "keys-INITIAL_FORMS": 0,
            "commercial_requests-TOTAL_FORMS": 0, "commercial_requests-INITIAL_FORMS": 0}

    assert operator.get(url).status_code == 403
    assert operator.post(url, form).status_code == 403
    assert not DeveloperApp.objects.exists()


@pytest.mark.parametrize("model", ["developerapp", "commercialrequest", "auditlog"])
def test_lists_take_the_same_queries_for_many_rows(operator, admin_user, model, django_assert_max_num_queries):
    for _ in range(30):
        app = make_app()
        SpamReport.objects.create(app=app, reporter=UserFactory())
        request = apps.request_commercial(app=app, use_description="Order updates")
        apps.decide_commercial(request=request, approve=False, actor=admin_user)
    url = reverse(f"admin:developer_api_{model}_changelist")

    with django_assert_max_num_queries(12):
        page = operator.get(url)

    assert page.status_code == 200


def test_the_app_list_counts_the_open_reports_of_each_app(operator):
    reported = make_app(name="Reported")
    make_app(name="Quiet")
    SpamReport.objects.create(app=reported, reporter=UserFactory())
    SpamReport.objects.create(app=reported, reporter=UserFactory())
    SpamReport.objects.create(app=reported, reporter=UserFactory(), status="dismissed")

    page = operator.get(reverse("admin:developer_api_developerapp_changelist"), {"o": "6"})  # by the count

    counts = [(app.name, app.open_reporter_count) for app in page.context["cl"].result_list]
    assert counts == [("Quiet", 0), ("Reported", 2)]


@pytest.mark.parametrize("name", [
    *(f"developer_api_{model}" for model in ["developerapp", "apikey", "commercialrequest", "monthlyusage",
                                             "outboundmessage", "optin", "spamreport", "webhookdelivery", "auditlog"]),
    "storage_user", "storage_device", "storage_conversation", "storage_message",
])
def test_a_search_of_many_words_is_answered(operator, name):
    """Each word is one more condition: SQLite refused a query of thousands (a 500)."""
    make_app(name="Findable")

    page = operator.get(reverse(f"admin:{name}_changelist"), {"q": " ".join(["Findable"] * 3000)})

    assert page.status_code == 200
    assert "words were searched for" in page.content.decode()


def test_reinstating_an_active_app_keeps_its_open_reports(operator):
    """Only a suspension is lifted: an app below the threshold keeps the reports counting toward it."""
    app = make_app()
    SpamReport.objects.create(app=app, reporter=UserFactory())

    post_action(operator, "developer_api_developerapp", "reinstate_apps", [app.pk])

    assert list(SpamReport.objects.values_list("status", flat=True)) == ["open"]
    assert not AuditLog.objects.filter(action="app_reinstated").exists()


def test_dismissing_a_decided_report_leaves_it_as_decided(operator):
    upheld = SpamReport.objects.create(app=make_app(), reporter=UserFactory(), status="upheld")

    post_action(operator, "developer_api_spamreport", "dismiss", [upheld.pk])

    upheld.refresh_from_db()
    assert upheld.status == "upheld"
    assert not AuditLog.objects.filter(action="report_dismissed").exists()


def test_moving_an_app_to_its_own_tier_is_not_a_change(operator):
    free, commercial = make_app(), make_app()
    DeveloperApp.objects.filter(pk=commercial.pk).update(tier="commercial")

    post_action(operator, "developer_api_developerapp", "make_free", [free.pk, commercial.pk])

    assert list(AuditLog.objects.filter(action="tier_changed").values_list("target_id", "detail")) == [
        (str(commercial.pk), {"from": "commercial", "to": "free"})
    ]


def test_an_operator_takes_a_message_down_and_the_log_says_who(operator, admin_user):
    from storage.models import Message
    from tests.factories import direct_conversation, sent_message

    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    spam = sent_message(alice, chat, "buy cheap watches")
    sent_message(alice, chat, "see you")
    viewer = staff_client("view_message")

    post_action(viewer, "storage_message", "take_down", [spam.pk])
    assert Message.objects.get(pk=spam.pk).kind == "text"  # one who may only view cannot

    page = post_action(operator, "storage_message", "take_down", [spam.pk])
    post_action(operator, "storage_message", "take_down", [spam.pk])  # again: nothing more

    assert page.status_code == 302
    assert [(m.seq, m.kind, m.text) for m in Message.objects.filter(conversation=chat)] == [
        (1, "removed", ""), (2, "text", "see you"), (3, "system", "A message was removed by a moderator.")]
    entry = AuditLog.objects.get()
    assert (entry.actor, entry.action, entry.target_id) == (admin_user, "message_taken_down", str(spam.pk))
    assert entry.detail == {"conversation": chat.pk, "seq": 1, "sender": alice.pk}


def test_the_message_list_takes_the_same_queries_for_many_rows(operator, django_assert_max_num_queries):
    from tests.factories import direct_conversation, sent_message

    for _ in range(30):
        alice, bob = UserFactory(), UserFactory()
        sent_message(alice, direct_conversation(alice, bob), "hi")

    with django_assert_max_num_queries(12):
        page = operator.get(reverse("admin:storage_message_changelist"))

    assert page.status_code == 200


def moderator_client(user) -> Client:
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user", "delete_device"]))
    client = Client()
    client.force_login(user)
    return client


def user_form(user, **changes) -> dict:
    form = {"phone_number": user.phone_number, "display_name": user.display_name, "about": user.about,
            "is_active": "on", "is_staff": "on" if user.is_staff else ""}
    form.update(changes)
    return {name: value for name, value in form.items() if value != ""}


def test_a_moderator_who_may_change_users_cannot_make_themselves_superuser(admin_user):
    moderator = UserFactory(is_staff=True)
    client = moderator_client(moderator)

    own_page = client.post(reverse("admin:storage_user_change", args=[moderator.pk]),
                           user_form(moderator, is_superuser="on", user_permissions=[
                               str(pk) for pk in Permission.objects.values_list("pk", flat=True)]))

    assert own_page.status_code == 302  # their own profile they may edit, not their rights
    moderator.refresh_from_db()
    assert not moderator.is_superuser
    assert set(moderator.user_permissions.values_list("codename", flat=True)) == {
        "view_user", "change_user", "delete_device"}


def test_a_moderator_cannot_take_over_suspend_or_log_out_a_superuser(admin_user):
    from storage.models import Device

    client = moderator_client(UserFactory(is_staff=True))
    Device.objects.create(user=admin_user, name="laptop", token_hash="0" * 64)
    password_before = admin_user.password

    password = client.post(reverse("admin:auth_user_password_change", args=[admin_user.pk]),
                           {"password1": "mine now 12345", "password2": "mine now 12345", "usable_password": "true"})
    post_action(client, "storage_user", "suspend_users", [admin_user.pk])
    logout = client.post(reverse("admin:storage_device_delete", args=[admin_user.devices.get().pk]), {"post": "yes"})

    assert password.status_code == 403
    assert logout.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.password == password_before and admin_user.is_active
    assert admin_user.devices.exists()


def test_a_moderator_still_suspends_people_and_a_superuser_grants_rights(operator):
    spammer, helper = UserFactory(), UserFactory()
    client = moderator_client(UserFactory(is_staff=True))

    post_action(client, "storage_user", "suspend_users", [spammer.pk])
    operator.post(reverse("admin:storage_user_change", args=[helper.pk]), user_form(helper, is_staff="on"))

    spammer.refresh_from_db(), helper.refresh_from_db()
    assert not spammer.is_active
    assert helper.is_staff


@pytest.mark.parametrize("model", ["conversation", "contact", "block"])
def test_deleting_what_people_made_is_audited(operator, admin_user, model):
    from storage.models import Block, Contact
    from tests.factories import direct_conversation

    alice, bob = UserFactory(), UserFactory()
    made = {"conversation": lambda: direct_conversation(alice, bob),
            "contact": lambda: Contact.objects.create(owner=alice, contact=bob),
            "block": lambda: Block.objects.create(blocker=alice, blocked=bob)}[model]()

    response = operator.post(reverse(f"admin:storage_{model}_delete", args=[made.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not type(made).objects.filter(pk=made.pk).exists()
    entry = AuditLog.objects.get()
    assert (entry.actor, entry.action, entry.target_id) == (admin_user, f"{model}_deleted", str(made.pk))


def test_a_moderator_who_may_change_groups_cannot_give_their_own_group_every_permission(operator):
    from django.contrib.auth.models import Group

    moderators = Group.objects.create(name="moderators")
    moderators.permissions.set(Permission.objects.filter(codename__in=["view_user", "change_group", "add_group"]))
    moderator = UserFactory(is_staff=True)
    moderator.groups.add(moderators)
    client = Client()
    client.force_login(moderator)
    everything = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]

    changed = client.post(reverse("admin:auth_group_change", args=[moderators.pk]),
                          {"name": "moderators", "permissions": everything})
    added = client.post(reverse("admin:auth_group_add"), {"name": "mine", "permissions": everything})

    assert (changed.status_code, added.status_code) == (403, 403)
    assert set(moderators.permissions.values_list("codename", flat=True)) == {"view_user", "change_group", "add_group"}
    assert not Group.objects.filter(name="mine").exists()
    # A superuser still makes and fills groups.
    operator.post(reverse("admin:auth_group_change", args=[moderators.pk]),
                  {"name": "moderators", "permissions": everything})
    assert moderators.permissions.count() == len(everything)


def test_a_message_gone_before_the_action_reaches_it_is_skipped(operator, monkeypatch):
    from broker.services import moderation
    from storage.models import Conversation
    from tests.factories import direct_conversation, sent_message

    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    doomed, kept = direct_conversation(alice, bob), direct_conversation(alice, carol)
    first, second = sent_message(alice, doomed, "spam"), sent_message(alice, kept, "spam too")
    take_down = moderation.take_down

    def another_operator_deleted_the_chat_meanwhile(*, message_id):
        Conversation.objects.filter(pk=doomed.pk).delete()
        return take_down(message_id=message_id)

    monkeypatch.setattr(moderation, "take_down", another_operator_deleted_the_chat_meanwhile)
    page = post_action(operator, "storage_message", "take_down", [first.pk, second.pk])

    assert page.status_code == 302  # was a 500 on the vanished message
    assert list(AuditLog.objects.values_list("target_id", flat=True)) == [str(second.pk)]


def test_only_a_superuser_sets_someone_elses_password(operator):
    """Setting a password is logging in as that person, or as an app's account: a moderator who
    may change users (to suspend them) does not become them."""
    from tests.developer_api.helpers import make_app

    person, bot = UserFactory(), make_app().bot
    moderator = UserFactory(is_staff=True)
    client = moderator_client(moderator)
    form = {"password1": "taken over 12345", "password2": "taken over 12345", "usable_password": "true"}
    before = {user.pk: user.password for user in (person, bot)}

    refused = [client.post(reverse("admin:auth_user_password_change", args=[user.pk]), form).status_code
               for user in (person, bot)]
    own = client.post(reverse("admin:auth_user_password_change", args=[moderator.pk]), form)
    by_superuser = operator.post(reverse("admin:auth_user_password_change", args=[person.pk]), form)

    assert refused == [403, 403]
    assert own.status_code == by_superuser.status_code == 302
    person.refresh_from_db(), bot.refresh_from_db(), moderator.refresh_from_db()
    assert bot.password == before[bot.pk]
    assert person.check_password("taken over 12345")  # the superuser's, not the moderator's
    assert moderator.check_password("taken over 12345")
