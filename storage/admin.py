from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.utils.text import smart_split

from storage.models import Block, Contact, Conversation, Device, Membership, Message, User

MAX_SEARCH_WORDS = 20


class BoundedSearch:
    """Searches for the first MAX_SEARCH_WORDS words only, and says so: each word adds a condition
    over every search field, and a search of thousands made a query the database refused (SQLite's
    expression depth), a 500."""

    def get_search_results(self, request, queryset, search_term):
        words = list(smart_split(search_term))
        if len(words) > MAX_SEARCH_WORDS:
            search_term = " ".join(words[:MAX_SEARCH_WORDS])
            self.message_user(request, f"Only the first {MAX_SEARCH_WORDS} words were searched for.",
                              messages.WARNING)
        return super().get_search_results(request, queryset, search_term)


@admin.register(User)
class UserAdmin(BoundedSearch, BaseUserAdmin):
    ordering = ["phone_number"]
    list_display = ["phone_number", "display_name", "is_active", "is_staff", "date_joined", "last_seen"]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["phone_number", "display_name"]
    fieldsets = [
        (None, {"fields": ["phone_number", "password"]}),
        ("Profile", {"fields": ["display_name", "about", "photo", "last_seen"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["phone_number", "display_name", "password1", "password2"]})]
    # The photo is the user's own upload, set through the broker (which tells whoever shows it and
    # releases the one replaced); operators remove an offensive one with developer_api's action.
    readonly_fields = ["photo", "last_seen"]

    # Django lets anyone who may change users change any user, themselves included: a moderator
    # given "Can change user" to suspend spammers could tick their own superuser box, or set a
    # superuser's password and log in as them. Here only superusers grant rights or touch the
    # accounts of staff; other staff manage people's accounts.
    RIGHTS = ["is_staff", "is_superuser", "groups", "user_permissions"]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, *self.RIGHTS] if not request.user.is_superuser else fields

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and may_manage(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and may_manage(request.user, obj)

    def user_change_password(self, request, id, form_url=""):
        # Setting someone's password is logging in as them (an app's account included, which has
        # none): staff who suspend people do not become them. Their own password they may set.
        if not request.user.is_superuser and str(request.user.pk) != unquote(id):
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)


def may_manage(operator: User, account: User | None) -> bool:
    """Whether `operator` may change or remove `account`: a superuser any, other staff only people's
    accounts (their own included, short of their rights)."""
    if account is None or operator.is_superuser or account.pk == operator.pk:
        return True
    return not (account.is_staff or account.is_superuser)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    """A group's permissions are rights too: staff allowed to change groups could otherwise give a
    group they are in every permission. Only superusers make, change or delete groups; other staff
    with the view permission look."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Device)
class DeviceAdmin(BoundedSearch, admin.ModelAdmin):
    list_display = ["user", "name", "created_at", "last_used_at"]
    search_fields = ["user__phone_number", "name"]
    # The token logs in as `user`: a device is never handed to someone else, and only logging in
    # makes one (with a token whose hash this is).
    readonly_fields = ["user", "token_hash"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a device logs it out: only those who may manage its user's account.
        return super().has_delete_permission(request, obj) and may_manage(request.user, obj.user if obj else None)


class MembershipInline(admin.TabularInline):
    """Shown, not edited: the broker adds a member after the history they may see
    (joined_after_seq), moves members_version and tells the others; a row added here did none of
    it, and a row deleted here left no departure."""

    model = Membership
    extra = 0
    can_delete = False
    readonly_fields = ["user", "role", "joined_after_seq", "delivered_seq", "read_seq", "joined_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(BoundedSearch, admin.ModelAdmin):
    list_display = ["id", "kind", "title", "last_seq", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["title"]
    inlines = [MembershipInline]
    # A conversation is made by the broker with its members (and a direct one with its pair), and
    # its kind decides who may be in it: neither is made nor turned here. Its title neither: no
    # client hears of a new title (members have theirs from the conversation list), so a title
    # changed here would be one thing in the admin and another on every member's screen.
    readonly_fields = ["kind", "title", "photo", "created_by", "created_at", "last_seq", "last_activity_at",
                       "direct_key", "members_version"]

    def has_add_permission(self, request):
        return False

    def get_deleted_objects(self, objs, request):
        # A conversation goes with all its messages, which leaves no gap in anyone's seqs: the
        # messages' own refusal to be deleted one by one (MessageAdmin) does not hold here.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Message._meta.verbose_name)
        return deleted, counts, perms_needed, protected


@admin.register(Message)
class MessageAdmin(BoundedSearch, admin.ModelAdmin):
    list_display = ["conversation", "seq", "sender", "kind", "created_at"]
    list_select_related = ["conversation", "sender"]
    list_filter = ["kind"]
    search_fields = ["text", "sender__phone_number"]
    # A message is what its sender said to the members it was sent to, at the seq the broker gave
    # it there: shown here, never rewritten (the members would keep their copies and be told
    # nothing). An operator takes a message down instead (broker.services.moderation).
    readonly_fields = ["conversation", "seq", "sender", "client_id", "kind", "text", "event", "media", "reply_to_seq",
                       "created_at", "edited_at"]

    def has_add_permission(self, request):
        return False  # messages are sent through the broker, which gives each its seq

    def has_delete_permission(self, request, obj=None):
        # A deleted message leaves a gap in its conversation's seqs, and clients acknowledge only up
        # to their first gap (docs/protocol.md): they would be sent what follows it at every connect.
        return False


class LookOnly(BoundedSearch, admin.ModelAdmin):
    """People's own lists, changed by the people through the broker (which tells whom it concerns:
    a block changes what each sees of the other's presence); operators look. (Deleting stays
    allowed: deleting a user deletes theirs, and the admin refuses a deletion that would take rows
    the operator may not delete.)"""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Contact)
class ContactAdmin(LookOnly):
    list_display = ["owner", "contact", "name", "created_at"]
    list_select_related = ["owner", "contact"]
    search_fields = ["owner__phone_number", "contact__phone_number", "name"]


@admin.register(Block)
class BlockAdmin(LookOnly):
    list_display = ["blocker", "blocked", "created_at"]
    list_select_related = ["blocker", "blocked"]
    search_fields = ["blocker__phone_number", "blocked__phone_number"]
