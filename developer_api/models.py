"""What the developer API keeps: third-party apps, their keys, who opted in to hear from them, what
they sent (the record usage fees are billed from), spam reports, webhook deliveries and the audit
log of operator actions.

Each app speaks through a bot account, an ordinary `storage.User` with `is_business` set, so its
messages go through the same broker door as everyone's (ordering, receipts, blocks).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class DeveloperApp(models.Model):
    class Tier(models.TextChoices):
        FREE = "free"
        COMMERCIAL = "commercial"

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="developer_apps")
    bot = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="developer_app")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    suspended_reason = models.CharField(max_length=200, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Set when spam reports suspended the app on their own: an operator should look at it.
    needs_review = models.BooleanField(default=False)
    webhook_url = models.URLField(max_length=500, blank=True)
    # HMAC key of X-Hub-Signature-256; the app needs it in clear to check signatures, so it is kept so.
    webhook_secret = models.CharField(max_length=64)
    webhook_verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "developer app"

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def in_service(self) -> bool:
        """Neither the app, nor its owner, nor its account is suspended: its keys work and its
        webhook is called."""
        return self.is_active and self.owner.is_active and self.bot.is_active


class ApiKey(models.Model):
    """One API key of an app. Only a SHA-256 hash of the key is stored; `prefix` is the part shown."""

    SCOPES = ["messages:send", "messages:read", "media:write", "webhooks:manage"]

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=64, blank=True)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}\u2026 ({self.app.name})"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class CommercialRequest(models.Model):
    """An owner asks for commercial use; an operator approves (the app becomes commercial) or refuses."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REFUSED = "refused"

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="commercial_requests")
    use_description = models.TextField(max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    decision_note = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app"], condition=Q(status="pending"), name="one_pending_request_per_app"),
        ]

    def __str__(self):
        return f"commercial use of {self.app.name}: {self.status}"


class OptIn(models.Model):
    """A user agreed to hear from an app: by messaging its bot, or by accepting the app."""

    class Source(models.TextChoices):
        MESSAGED = "messaged"
        ACCEPTED = "accepted"

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="opt_ins")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "opt-in"
        constraints = [models.UniqueConstraint(fields=["app", "user"], name="unique_opt_in")]


class OutboundMessage(models.Model):
    """A message an app sent through the API: its API id, and the record usage fees are billed from.

    `message` is the stored conversation message; a send the recipient's side refused (they blocked
    the app) is kept too, as `failed`, without one. A media message keeps its type and media here,
    so its status still reports them without the conversation message.
    """

    public_id = models.CharField(max_length=40, unique=True)
    app = models.ForeignKey(DeveloperApp, on_delete=models.PROTECT, related_name="outbound_messages")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="+")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    to = models.CharField(max_length=16)
    message = models.OneToOneField("storage.Message", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="outbound")
    # text, image, video, audio or document, as the app sent it.
    message_type = models.CharField(max_length=16, default="text")
    # The media a media message carried (null for text, or once the media is deleted).
    media = models.ForeignKey("storage.Media", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The direct conversation with the recipient (0 if none exists): webhooks keep order within it.
    conversation_id = models.BigIntegerField(default=0)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    tier = models.CharField(max_length=16, choices=DeveloperApp.Tier.choices)
    billable = models.BooleanField(default=False)
    # The first day of the month (UTC) the message counts in.
    month = models.DateField()
    failed = models.BooleanField(default=False)
    error_code = models.CharField(max_length=32, blank=True)
    error_reason = models.CharField(max_length=200, blank=True)
    # The last status told to the app's webhook, so each change is announced exactly once.
    reported_status = models.CharField(max_length=16, default="sent")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "client_id"], condition=Q(client_id__isnull=False),
                                    name="unique_app_client_id"),
        ]
        indexes = [models.Index(fields=["app", "month"])]

    def __str__(self):
        return self.public_id


class MonthlyUsage(models.Model):
    """Messages an app sent in one month: the counter the cap is enforced on, and the usage report."""

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="monthly_usage")
    month = models.DateField()
    messages = models.PositiveIntegerField(default=0)
    billable_messages = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "monthly usage"
        constraints = [models.UniqueConstraint(fields=["app", "month"], name="unique_usage_month")]
        ordering = ["-month", "app_id"]


class SpamReport(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        DISMISSED = "dismissed"
        UPHELD = "upheld"

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="spam_reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # One open report per person and app: a second one changes nothing, so nobody counts twice.
        constraints = [
            models.UniqueConstraint(fields=["app", "reporter"], condition=Q(status="open"), name="one_open_report"),
        ]

    def __str__(self):
        return f"report of {self.app.name} by {self.reporter_id}"


class WebhookDelivery(models.Model):
    """One event for an app's webhook. Events of one (app, conversation) go out in `id` order, each
    only after the one before it was delivered (or given up on)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # given up after WEBHOOK_RETRY_FOR

    class Event(models.TextChoices):
        MESSAGE = "message"
        STATUS = "status"
        REMOVED = "message.removed", "Message removed"  # one the app had was taken down by a moderator, or deleted by its writer
        EDITED = "message.edited", "Message edited"  # a user edited one the app had

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="webhook_deliveries")
    conversation_id = models.BigIntegerField()
    event = models.CharField(max_length=16, choices=Event.choices)
    # The exact JSON sent (and signed), so a resend carries the same bytes.
    body = models.TextField()
    # For a message event: its seq, so a delivery can mark it delivered to the app.
    seq = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker holds the delivery until then while it posts it; a crashed worker's hold runs out.
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Retries go on until WEBHOOK_RETRY_FOR after this (an operator's resend starts it again).
    retry_started_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["app", "conversation_id", "status", "id"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk} to {self.app.name}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    url = models.URLField(max_length=500)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    ok = models.BooleanField(default=False)

    class Meta:
        ordering = ["attempted_at", "id"]


class AuditLog(models.Model):
    """One operator action (or one the system took on its own, with no actor), for the record."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.action} {self.target_type} {self.target_repr}"
