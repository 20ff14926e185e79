"""Operators' side of the developer API in the Django admin: apps, keys, commercial requests, usage,
spam reports, webhook deliveries and users, with search, filters and actions. Every action and
every edit made here is written to the audit log (developer_api.AuditLog)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from broker.errors import NotFound
from broker.services import accounts, conversations, moderation
from developer_api.models import (
    ApiKey,
    AuditLog,
    CommercialRequest,
    DeveloperApp,
    MonthlyUsage,
    OptIn,
    OutboundMessage,
    SpamReport,
    WebhookAttempt,
    WebhookDelivery,
)
from developer_api.services import apps, audit, keys, spam, usage, webhooks
from storage.admin import BlockAdmin as StorageBlockAdmin
from storage.admin import BoundedSearch
from storage.admin import ContactAdmin as StorageContactAdmin
from storage.admin import ConversationAdmin as StorageConversationAdmin
from storage.admin import DeviceAdmin as StorageDeviceAdmin
from storage.admin import MessageAdmin as StorageMessageAdmin
from storage.admin import UserAdmin as StorageUserAdmin
from storage.admin import may_manage
from storage.models import Block, Contact, Conversation, Device, Message, User


class AuditedDeletions:
    """Deletions through the admin (its delete view and the "delete selected" action) are audited
    like its actions. A mixin, for model admins that derive from another app's."""

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit.record(actor=request.user, action=f"{obj._meta.model_name}_deleted", target=obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # no entry for a deletion that did not happen
            for obj in queryset:
                audit.record(actor=request.user, action=f"{obj._meta.model_name}_deleted", target=obj)
            super().delete_queryset(request, queryset)


class AuditedAdmin(AuditedDeletions, BoundedSearch, admin.ModelAdmin):
    """Edits and deletions through the admin's forms are audited like its actions."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = {name: str(form.cleaned_data.get(name))[:200] for name in form.changed_data}
        audit.record(actor=request.user, action=f"{obj._meta.model_name}_{'changed' if change else 'added'}",
                     target=obj, detail={"fields": changed})


class ReadOnlyAdmin(BoundedSearch, admin.ModelAdmin):
    """Records, not settings: operators look, the system writes."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class KeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "name", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class CommercialRequestInline(admin.TabularInline):
    model = CommercialRequest
    extra = 0
    can_delete = False
    fields = ["status", "use_description", "requested_at", "decided_at", "decided_by", "decision_note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DeveloperApp)
class DeveloperAppAdmin(AuditedAdmin):
    list_display = ["name", "id", "owner", "tier", "status", "needs_review", "open_reports", "created_at"]
    list_filter = ["tier", "status", "needs_review"]
    search_fields = ["name", "description", "owner__phone_number", "owner__display_name", "bot__phone_number"]
    raw_id_fields = ["owner", "bot"]
    # Tier and suspension change through the actions (services.apps), which audit them and do the
    # rest: a suspension's time, a reinstatement's dismissal of the open spam reports.
    readonly_fields = ["bot", "tier", "status", "suspended_reason", "needs_review", "webhook_url",
                       "webhook_verified_at", "suspended_at", "created_at", "usage_report"]
    exclude = ["webhook_secret"]
    inlines = [KeyInline, CommercialRequestInline]
    actions = ["suspend_apps", "reinstate_apps", "uphold_spam_reports", "revoke_all_keys", "make_free",
               "make_commercial"]

    def has_add_permission(self, request):
        # Owners register apps (apps.create_app makes the bot account and the signing secret with
        # it); the add form would store an app with neither.
        return False

    def delete_model(self, request, obj):
        with transaction.atomic():
            super().delete_model(request, obj)
            apps.retire_accounts(bot_ids=[obj.bot_id])

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            bot_ids = list(queryset.values_list("bot_id", flat=True))
            super().delete_queryset(request, queryset)
            apps.retire_accounts(bot_ids=bot_ids)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"name", "description"} & set(form.changed_data):
            # Users see the app as its account: update_app renames and re-describes that too.
            apps.update_app(app=obj, name=obj.name, description=obj.description)

    def get_queryset(self, request):
        return spam.with_open_reporter_counts(super().get_queryset(request))

    @admin.display(description="open spam reports", ordering="open_reporter_count")
    def open_reports(self, app):
        return app.open_reporter_count

    @admin.display(description="usage (last 12 months)")
    def usage_report(self, app):
        if not app.pk:
            return "-"
        report = usage.usage_report(app=app)
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((m["month"], m["messages"], m["billable_messages"]) for m in report["months"]))
        cap = report["monthly_cap"] if report["monthly_cap"] is not None else "none"
        return format_html("<p>Tier {}, monthly cap {}.</p><table><thead><tr><th>Month</th><th>Messages</th>"
                           "<th>Billable</th></tr></thead><tbody>{}</tbody></table>", report["tier"], cap, rows)

    @admin.action(description="Suspend the selected apps (their keys stop working)", permissions=["change"])
    def suspend_apps(self, request, queryset):
        done = sum(apps.suspend_app(app=app, actor=request.user, reason="suspended by an operator")
                   for app in queryset)
        self.message_user(request, f"{done} app(s) suspended.")

    @admin.action(description="Reinstate the selected apps (and dismiss their open spam reports)",
                  permissions=["change"])
    def reinstate_apps(self, request, queryset):
        done = sum(apps.reinstate_app(app=app, actor=request.user) for app in queryset)
        self.message_user(request, f"{done} app(s) reinstated.")

    @admin.action(description="Uphold the open spam reports (the apps stay suspended)", permissions=["change"])
    def uphold_spam_reports(self, request, queryset):
        total = sum(spam.uphold_reports(app=app, actor=request.user) for app in queryset)
        self.message_user(request, f"{total} report(s) upheld.")

    @admin.action(description="Revoke every key of the selected apps", permissions=["change"])
    def revoke_all_keys(self, request, queryset):
        revoked = sum(keys.revoke_key(key=key, actor=request.user)
                      for key in ApiKey.objects.filter(app__in=queryset, revoked_at__isnull=True))
        self.message_user(request, f"{revoked} key(s) revoked.")

    @admin.action(description="Move the selected apps to the free tier", permissions=["change"])
    def make_free(self, request, queryset):
        done = sum(apps.set_tier(app=app, tier=DeveloperApp.Tier.FREE, actor=request.user) for app in queryset)
        self.message_user(request, f"{done} app(s) moved to the free tier.")

    @admin.action(description="Move the selected apps to the commercial tier", permissions=["change"])
    def make_commercial(self, request, queryset):
        done = sum(apps.set_tier(app=app, tier=DeveloperApp.Tier.COMMERCIAL, actor=request.user) for app in queryset)
        self.message_user(request, f"{done} app(s) moved to the commercial tier.")


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked"), ("expired", "expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = ["prefix", "app", "name", "scope_list", "state", "created_at", "expires_at", "last_used_at"]
    list_filter = [KeyStateFilter, "app__tier"]
    search_fields = ["prefix", "name", "app__name"]
    fields = ["app", "name", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["app", "prefix", "scopes", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False  # keys are made by their owners, so that only they ever see them

    @admin.display(description="scopes")
    def scope_list(self, key):
        return ", ".join(key.scopes)

    @admin.action(description="Revoke the selected keys (at once)", permissions=["change"])
    def revoke_keys(self, request, queryset):
        revoked = sum(keys.revoke_key(key=key, actor=request.user) for key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.")


@admin.register(CommercialRequest)
class CommercialRequestAdmin(ReadOnlyAdmin):
    list_display = ["app", "status", "requested_at", "decided_at", "decided_by"]
    list_select_related = ["app", "decided_by"]
    list_filter = ["status"]
    search_fields = ["app__name", "use_description", "app__owner__phone_number"]
    actions = ["approve", "refuse"]

    def has_change_permission(self, request, obj=None):
        # Actions need change permission; the form stays read-only (no editable fields).
        return request.user.has_perm("developer_api.change_commercialrequest")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Approve: the apps become commercial", permissions=["change"])
    def approve(self, request, queryset):
        done = sum(apps.decide_commercial(request=r, approve=True, actor=request.user) for r in queryset)
        self.message_user(request, f"{done} request(s) approved.")

    @admin.action(description="Refuse the selected requests", permissions=["change"])
    def refuse(self, request, queryset):
        done = sum(apps.decide_commercial(request=r, approve=False, actor=request.user) for r in queryset)
        self.message_user(request, f"{done} request(s) refused.")


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdmin):
    list_display = ["app", "month", "messages", "billable_messages"]
    list_filter = ["month", "app__tier"]
    search_fields = ["app__name"]
    date_hierarchy = "month"


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "app", "to", "message_type", "tier", "billable", "failed", "reported_status",
                    "created_at"]
    list_filter = ["billable", "tier", "failed", "message_type", "month"]
    search_fields = ["public_id", "to", "app__name"]
    date_hierarchy = "created_at"


@admin.register(OptIn)
class OptInAdmin(ReadOnlyAdmin):
    list_display = ["app", "user", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["app__name", "user__phone_number"]


@admin.register(SpamReport)
class SpamReportAdmin(ReadOnlyAdmin):
    list_display = ["app", "reporter", "status", "reason", "created_at"]
    list_filter = ["status"]
    search_fields = ["app__name", "reporter__phone_number", "reason"]
    actions = ["dismiss", "uphold"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("developer_api.change_spamreport")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Dismiss the selected reports", permissions=["change"])
    def dismiss(self, request, queryset):
        done = sum(spam.dismiss_report(report=report, actor=request.user) for report in queryset)
        self.message_user(request, f"{done} report(s) dismissed.")

    @admin.action(description="Uphold: suspend the reported apps", permissions=["change"])
    def uphold(self, request, queryset):
        for app in DeveloperApp.objects.filter(pk__in=queryset.values("app_id")):
            spam.uphold_reports(app=app, actor=request.user)
        self.message_user(request, "Reports upheld; the apps are suspended.")


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["attempted_at", "status_code", "latency_ms", "ok", "error", "url"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "app", "event", "conversation_id", "status", "attempts", "next_attempt_at", "delivered_at",
                    "last_error"]
    list_filter = ["status", "event"]
    search_fields = ["app__name", "body", "last_error"]
    inlines = [AttemptInline]
    actions = ["resend"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("developer_api.change_webhookdelivery")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Resend the selected events", permissions=["change"])
    def resend(self, request, queryset):
        for delivery in queryset:
            webhooks.resend(delivery=delivery, actor=request.user)
        self.message_user(request, f"{queryset.count()} event(s) queued again.", messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_repr"]
    list_select_related = ["actor"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_repr", "target_id", "actor__phone_number"]
    date_hierarchy = "created_at"


# People's accounts and what they made live in storage's admin; operators suspend users from the
# same list, log devices out by deleting them and take messages down, audited here.
for model in (User, Device, Conversation, Message, Contact, Block):
    admin.site.unregister(model)


class LoggedOutDeletions:
    """A device deleted in the admin is logged out (accounts.logout): its open websockets are told
    and closed at once, as at logout, rather than at their next periodic re-check."""

    def delete_model(self, request, obj):
        accounts.logout(device=obj)

    def delete_queryset(self, request, queryset):
        for device in queryset:
            accounts.logout(device=device)


@admin.register(Device)
class DeviceAdmin(AuditedDeletions, LoggedOutDeletions, StorageDeviceAdmin):
    pass


@admin.register(User)
class UserAdmin(AuditedDeletions, StorageUserAdmin):
    list_display = [*StorageUserAdmin.list_display, "is_business"]
    list_filter = [*StorageUserAdmin.list_filter, "is_business"]
    actions = ["suspend_users", "reinstate_users", "remove_photos"]

    @admin.action(description="Suspend the selected users (logged out everywhere, cannot log in)",
                  permissions=["change"])
    def suspend_users(self, request, queryset):
        users = self._managed(request, queryset.filter(is_active=True).exclude(pk=request.user.pk))
        for user in users:
            spam.suspend_user(user=user, actor=request.user)
        self.message_user(request, f"{len(users)} user(s) suspended.")

    @admin.action(description="Reinstate the selected users", permissions=["change"])
    def reinstate_users(self, request, queryset):
        users = self._managed(request, queryset.filter(is_active=False))
        for user in users:
            spam.reinstate_user(user=user, actor=request.user)
        self.message_user(request, f"{len(users)} user(s) reinstated.")

    @admin.action(description="Remove the profile photo of the selected users (whoever shows them is told)",
                  permissions=["change"])
    def remove_photos(self, request, queryset):
        removed = 0
        for user in self._managed(request, queryset.filter(photo__isnull=False)):
            with transaction.atomic():  # no entry for a photo that was not removed
                photo_id = User.objects.select_for_update().filter(pk=user.pk).values_list("photo_id", flat=True).get()
                if photo_id is None:  # removed meanwhile, by its owner
                    continue
                accounts.update_profile(user=user, photo_media_id=None)
                audit.record(actor=request.user, action="user_photo_removed", target=user, detail={"media": photo_id})
                removed += 1
        self.message_user(request, f"{removed} photo(s) removed.")

    def _managed(self, request, queryset) -> list[User]:
        users = list(queryset)
        managed = [user for user in users if may_manage(request.user, user)]
        if len(managed) < len(users):
            self.message_user(request, f"{len(users) - len(managed)} staff account(s) left as they were: "
                                       "only a superuser changes staff accounts.", messages.WARNING)
        return managed

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if name not in ("password", "password1", "password2")]
        audit.record(actor=request.user, action="user_changed" if change else "user_added", target=obj,
                     detail={"fields": changed})
        if change and {"display_name", "about"} & set(form.changed_data):
            accounts.announce_profile(obj)  # those who show the name see the new one
        if change and "is_active" in form.changed_data:
            # Unticking "active" is a suspension, as the action makes it (logged out everywhere).
            if obj.is_active:
                spam.reinstate_user(user=obj, actor=request.user)
            elif obj.pk != request.user.pk:
                spam.suspend_user(user=obj, actor=request.user)

    def user_change_password(self, request, id, form_url=""):
        # Django's view saves the password form itself, with no save_model to hook into: the entry
        # is written when the stored hash changed (a new password, or password login disabled).
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            hash_before = user.password if user is not None else None
            # An operator setting their own password keeps this session (Django gives it a new key).
            own_session = request.session.session_key if user is not None and user.pk == request.user.pk else None
            response = super().user_change_password(request, id, form_url)
            if user is not None and request.method == "POST":
                user.refresh_from_db(fields=["password"])
                if user.password != hash_before:
                    audit.record(actor=request.user, action="user_password_changed", target=user,
                                 detail={"password_login": user.has_usable_password()})
                    # Whoever held the old password is out: devices logged out, other sessions' pages stop now.
                    accounts.password_set_by_operator(user=user, keep_session_key=own_session)
        return response


@admin.register(Conversation)
class ConversationAdmin(AuditedDeletions, StorageConversationAdmin):
    actions = ["remove_group_photos"]

    @admin.action(description="Remove the photo of the selected groups (members told it was a moderator)",
                  permissions=["change"])
    def remove_group_photos(self, request, queryset):
        removed = 0
        for conversation in queryset.filter(photo__isnull=False):
            with transaction.atomic():  # no entry for a photo that was not removed
                photo_id = (Conversation.objects.select_for_update().filter(pk=conversation.pk)
                            .values_list("photo_id", flat=True).first())
                if photo_id is None:  # removed meanwhile, or the group deleted
                    continue
                notice = conversations.remove_group_photo(conversation_id=conversation.pk)
                if notice is not None:
                    audit.record(actor=request.user, action="group_photo_removed", target=conversation,
                                 detail={"media": photo_id, "seq": notice.seq})
                    removed += 1
        self.message_user(request, f"{removed} group photo(s) removed.")


@admin.register(Contact)
class ContactAdmin(AuditedDeletions, StorageContactAdmin):
    pass


@admin.register(Block)
class BlockAdmin(AuditedDeletions, StorageBlockAdmin):
    pass


@admin.register(Message)
class MessageAdmin(StorageMessageAdmin):
    actions = ["take_down"]

    @admin.action(description="Take down the selected messages (text and media removed, members told)",
                  permissions=["change"])
    def take_down(self, request, queryset):
        taken = 0
        for message in queryset.filter(kind=Message.Kind.TEXT):
            with transaction.atomic():  # no entry for a message that was not taken down
                try:
                    notice = moderation.take_down(message_id=message.pk)
                except NotFound:  # deleted meanwhile, with its conversation: nothing left to take down
                    continue
                if notice is not None:
                    audit.record(actor=request.user, action="message_taken_down", target=message,
                                 detail={"conversation": message.conversation_id, "seq": message.seq,
                                         "sender": message.sender_id})
                    taken += 1
        self.message_user(request, f"{taken} message(s) taken down.")
