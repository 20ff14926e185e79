from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from storage.models import Block, Contact, Conversation, Device, Membership, Message, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["phone_number"]
    list_display = ["phone_number", "display_name", "is_active", "is_staff", "date_joined", "last_seen"]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["phone_number", "display_name"]
    fieldsets = [
        (None, {"fields": ["phone_number", "password"]}),
        ("Profile", {"fields": ["display_name", "about", "last_seen"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["phone_number", "display_name", "password1", "password2"]})]
    readonly_fields = ["last_seen"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "created_at", "last_used_at"]
    search_fields = ["user__phone_number", "name"]
    readonly_fields = ["token_hash"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["delivered_seq", "read_seq", "joined_after_seq"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "title", "last_seq", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["title"]
    inlines = [MembershipInline]
    readonly_fields = ["last_seq", "direct_key"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["conversation", "seq", "sender", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["text", "sender__phone_number"]
    raw_id_fields = ["conversation", "sender"]
    readonly_fields = ["seq", "client_id"]


admin.site.register(Contact)
admin.site.register(Block)
