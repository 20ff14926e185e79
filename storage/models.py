"""The data messenger keeps: people, their devices, contacts, conversations and messages.

Delivery state is kept as per-member watermarks (`Membership.delivered_seq` / `read_seq`) rather
than one row per message and recipient, so receipts cost O(members) in any group size.
"""

from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, phone_number, password=None, **extra_fields):
        if not phone_number:
            raise ValueError("A user needs a phone number.")
        user = self.model(phone_number=phone_number, **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, phone_number, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self.create_user(phone_number, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person, identified by a phone number in E.164 form."""

    phone_number = models.CharField(max_length=16, unique=True)
    display_name = models.CharField(max_length=64, blank=True)
    about = models.CharField(max_length=140, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    # The messaging identity of a developer app (developer_api): clients show a "business" badge.
    is_business = models.BooleanField(default=False)
    # An image the user uploaded, shown to whoever sees their name (broker.services.photos). PROTECT:
    # a photo in use is never deleted under them (clean_media counts it as in use).
    photo = models.ForeignKey("Media", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_index=False)

    objects = UserManager()

    USERNAME_FIELD = "phone_number"
    REQUIRED_FIELDS = ["display_name"]

    class Meta:
        # Few users have a photo: only they are indexed, for "is this media someone's photo?".
        indexes = [models.Index(fields=["photo"], condition=Q(photo__isnull=False), name="user_photo")]

    def __str__(self):
        return f"{self.display_name or 'user'} ({self.phone_number})"


class Device(models.Model):
    """One logged-in device of a user; its bearer token is stored only as a SHA-256 hash."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=64, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name or 'device'} of {self.user_id}"


class Contact(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="contacts")
    contact = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "contact"], name="unique_contact")]


class Block(models.Model):
    blocker = models.ForeignKey(User, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="unique_block")]


class Conversation(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct"
        GROUP = "group"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    title = models.CharField(max_length=100, blank=True)
    # "<low id>:<high id>" for direct conversations, so asking twice finds the same one.
    direct_key = models.CharField(max_length=41, unique=True, null=True, blank=True)
    # The seq of the newest message; the next message takes last_seq + 1 under a row lock.
    last_seq = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # Not indexed: every message moves it, and a user's conversation list sorts the few rows it
    # finds through memberships, which an index on this column does not help (docs/performance.md,
    # change 30). Indexed, each send also rewrote the index (and on PostgreSQL, no update of the
    # row could be HOT, so each one added an entry to every index of the table).
    last_activity_at = models.DateTimeField(default=timezone.now)
    # Moves at every change of members. A send reads who is in the conversation before it takes the
    # row lock that orders it; storing only if this is still what it read keeps a message from a
    # member removed meanwhile out, and one to them from being sent to them (broker.services.send).
    members_version = models.BigIntegerField(default=0)
    # A group's photo, set by its admins (broker.services.photos); direct conversations have none.
    photo = models.ForeignKey("Media", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_index=False)

    class Meta:
        # Partial, as message_media: conversations without a photo are not in it, and a send, which
        # rewrites the row, never changes the column (PostgreSQL's HOT updates stay possible).
        indexes = [models.Index(fields=["photo"], condition=Q(photo__isnull=False), name="conversation_photo")]

    def __str__(self):
        return self.title or f"{self.kind} #{self.pk}"


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        MEMBER = "member"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    # History starts after this seq: a member added later does not see what came before.
    joined_after_seq = models.BigIntegerField(default=0)
    delivered_seq = models.BigIntegerField(default=0)
    read_seq = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(default=timezone.now)
    # Until when the member's devices stay silent about this chat (broker.services.muting): null when
    # not muted, MUTED_FOR_GOOD when muted until they unmute it.
    muted_until = models.DateTimeField(null=True, blank=True)
    # When the member pinned the chat to the top of their list (broker.services.pinning); null: not pinned.
    pinned_at = models.DateTimeField(null=True, blank=True)

    MUTED_FOR_GOOD = datetime(9999, 12, 31, tzinfo=UTC)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="unique_membership"),
            models.CheckConstraint(condition=Q(read_seq__lte=models.F("delivered_seq")), name="read_not_past_delivered"),
        ]
        indexes = [models.Index(fields=["user", "conversation"])]


class Departure(models.Model):
    """A group a user left or was removed from, as they last saw it. It stays in their conversation
    list, marked left, under the title it had then, with its history readable from
    `joined_after_seq` up to `through_seq` (the notice of their going) and nothing after it, until
    they delete it (or are added back, which starts a new membership and ends this).

    Catch-up sends what they had not yet received of it, above `delivered_seq` up to `through_seq`,
    as it sends a member's backlog (the one way a device that was offline then learns of it), until
    an ack reaches `through_seq`; then only the partial index below holds nothing of it."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="departures")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="departures")
    # Their membership's, when they went: where their history starts, and their watermarks, which
    # receipts move on up to `through_seq` (read for the unread count, delivered for catch-up).
    joined_after_seq = models.BigIntegerField(default=0)
    delivered_seq = models.BigIntegerField()
    read_seq = models.BigIntegerField(default=0)
    through_seq = models.BigIntegerField()
    # What they saw last: later renames, members and messages are not theirs to see.
    title = models.CharField(max_length=100, blank=True)
    left_at = models.DateTimeField(default=timezone.now)  # the notice's time: where the list sorts it
    # The others in the group when they went, as [{"user", "role", "delivered_seq", "read_seq"}].
    members = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "conversation"], name="unique_departure"),
            models.CheckConstraint(
                condition=Q(read_seq__lte=models.F("delivered_seq")) & Q(delivered_seq__lte=models.F("through_seq")),
                name="departure_watermarks_in_order"),
        ]
        indexes = [
            # Catch-up asks at every connect for the user's departures still to deliver: only those
            # are in this index, so someone who has left many groups does not read them all.
            # It holds what catch-up reads of them (covering), or SQLite prefers unique_departure.
            models.Index(fields=["user", "conversation", "delivered_seq", "through_seq"],
                         condition=Q(delivered_seq__lt=models.F("through_seq")), name="departure_undelivered"),
        ]


class Media(models.Model):
    """An uploaded file: one row per upload, blobs shared by content (`sha256`), so identical files are
    stored once. Readable by its uploader and by members of a conversation with a message carrying it;
    a profile photo (`User.photo`) also by whoever sees its owner's name, a group's by its members."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        VIDEO = "video"
        VOICE = "voice"
        DOCUMENT = "document"

    uploader = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    mime_type = models.CharField(max_length=127)
    size = models.BigIntegerField()
    # SHA-256 of the stored file (after re-encoding, for images); the blob's name derives from it.
    sha256 = models.CharField(max_length=64, db_index=True)
    file = models.FileField(max_length=255)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    thumbnail = models.FileField(max_length=255, blank=True)
    # A document's file name as its uploader's device gave it (cleaned): what the recipients see and
    # save it as. Photos, videos and voice messages keep none (a camera's names say nothing).
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"{self.kind} {self.sha256[:12]}"


class Message(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text"
        SYSTEM = "system"
        # Taken down by an operator: its text and media are gone, its place (seq) and sender kept.
        REMOVED = "removed"

    # Notices about another message (its edit, its deletion for everyone): clients show them as
    # the change they make to that message, not as a line of their own, so they are never unread.
    HIDDEN_NOTICE_ACTIONS = ("message_edited", "message_deleted")

    # Every index is written on every message (storage/migrations/0004 says which ones and why), so
    # these foreign keys have none of their own: unique_message_seq and unique_sender_client_id
    # begin with their columns and serve their lookups.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False)
    seq = models.BigIntegerField()
    # Null for system messages (membership changes), which the server writes itself.
    sender = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+", db_index=False)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True)
    # For system messages: {"action": "member_added", "user": id, "by": id} and the like.
    event = models.JSONField(null=True, blank=True)
    # A photo, video, voice message or document; `text` is then its (optional) caption.
    media = models.ForeignKey(Media, on_delete=models.PROTECT, null=True, blank=True, related_name="messages",
                              db_index=False)
    created_at = models.DateTimeField(default=timezone.now)
    # The seq of the message this one replies to (quotes), in the same conversation; null for none.
    # A seq rather than a foreign key: a message keeps its seq when it is taken down or deleted for
    # everyone, so the reference outlives its text, and clients find it as they find any message,
    # by (conversation, seq). Not indexed: nothing looks messages up by what they quote.
    reply_to_seq = models.BigIntegerField(null=True, blank=True)
    # When its sender last edited its text (broker.services.editing); null if never. Not set by a
    # send: its INSERT leaves the column out (broker.services.send), so it is NULL.
    edited_at = models.DateTimeField(null=True, blank=True)
    # Sent on from another chat (broker.services.forwarding): shown "Forwarded". The database's own
    # default too, for statements that leave it out (bench/seed.py's bulk history).
    forwarded = models.BooleanField(default=False, db_default=False)

    # Not a column: the reactions a selector loaded with the message (storage.selectors.attach_reactions),
    # as (user id, emoji) pairs, oldest first. A message just sent has none, so its payload needs no query.
    loaded_reactions: tuple[tuple[int, str], ...] = ()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="unique_message_seq"),
            # Not partial: a NULL client_id never conflicts anyway (NULLs are distinct in a unique
            # index), and whole, it is also the index for finding a user's messages by sender.
            models.UniqueConstraint(fields=["sender", "client_id"], name="unique_sender_client_id"),
        ]
        indexes = [
            # Only messages with media are indexed by it: text messages do not pay for the index.
            models.Index(fields=["media"], condition=Q(media__isnull=False), name="message_media"),
            # The send rate limit counts a sender's newest messages (storage/migrations/0005).
            models.Index(fields=["sender", "created_at"], name="message_sender_recent"),
            # The unread count skips hidden notices in each chat's unread span (selectors.conversation_
            # summaries): by this index it reads a chat's few system messages, not everything unread.
            # Partial, so an ordinary message does not write it.
            models.Index(fields=["conversation", "seq"], condition=Q(kind="system"), name="message_system"),
        ]
        ordering = ["conversation", "seq"]

    def __str__(self):
        return f"{self.conversation_id}#{self.seq}"


class Reaction(models.Model):
    """One person's reaction to a message: a single emoji, one per person per message, replaced when
    they react again (broker.services.reactions). Gone with the message's content when it is deleted
    for everyone or taken down."""

    # unique_reaction begins with the message and serves the history page's lookup by message.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="unique_reaction")]

    def __str__(self):
        return f"{self.emoji} by {self.user_id} on message {self.message_id}"
