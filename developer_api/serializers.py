"""Request shapes (validated here, then handed to the services) and response shapes (declared for the
OpenAPI schemas; the tests validate real responses against them).

The error and user shapes are the client API's own (frontdesk.api.serializers), so both APIs
document one `ErrorSchema` and one `UserSchema`.
"""

from rest_framework import serializers

from developer_api.models import ApiKey
from frontdesk.api.serializers import ErrorSchema, StringField, UserSchema  # noqa: F401 (re-exported for the views)


# --- Requests: owners -----------------------------------------------------------------------
class AppCreateRequest(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="Shown to users as the name of the app's account.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AppUpdateRequest(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class KeyCreateRequest(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="",
                                 help_text="A label for you, e.g. where the key is used.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.SCOPES), min_length=1, max_length=4)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="When the key stops working; never if absent.")


class CommercialRequestCreate(serializers.Serializer):
    use_description = serializers.CharField(max_length=2000, help_text="What the app is for and who pays for it.")


class WebhookSetRequest(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="Your callback; it must pass the verify-token handshake.")
    verify_token = serializers.CharField(max_length=200, help_text="Sent as hub.verify_token in the handshake.")


# --- Requests: users -------------------------------------------------------------------------
class ReportRequest(serializers.Serializer):
    app_id = serializers.IntegerField(min_value=1, required=False, help_text="The app; or give user_id.")
    user_id = serializers.IntegerField(min_value=1, required=False, help_text="The app's account.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    block = serializers.BooleanField(required=False, default=False, help_text="Also block the app's account.")


# --- Requests: apps ---------------------------------------------------------------------------
class TextBody(serializers.Serializer):
    body = serializers.CharField(trim_whitespace=False)


MEDIA_KINDS = ["image", "video", "audio", "document"]


class MediaRef(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=2**62,
                                  help_text="A media id from POST /developer/v1/media (or from a user's message).")
    caption = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                    help_text="image, video and document only.")


class ReplyContext(serializers.Serializer):
    message_id = StringField(max_length=64, help_text="The message quoted: one the app sent to this user "
                                                      "(msg_...), or one the user wrote to it (in_..., from its event).")


class SendMessageRequest(serializers.Serializer):
    to = serializers.CharField(max_length=32, help_text="The user's phone number, in international form.")
    type = serializers.CharField(max_length=32, help_text='"text", "image", "video", "audio" or "document".')
    text = TextBody(required=False, help_text='For type "text".')
    image = MediaRef(required=False, help_text='For type "image": media uploaded as an image.')
    video = MediaRef(required=False, help_text='For type "video": media uploaded as a video.')
    audio = MediaRef(required=False, help_text='For type "audio": media uploaded as audio (no caption).')
    document = MediaRef(required=False, help_text='For type "document": media uploaded as a document.')
    client_id = StringField(max_length=64, required=False, trim_whitespace=False,
                            help_text="Optional, a string unique per message (a number is refused): a retry returns "
                                      "the same message.")
    context = ReplyContext(required=False, help_text="Optional: send it as a reply quoting that message of your "
                                                     "chat with the user.")


class MediaUploadRequest(serializers.Serializer):
    file = serializers.FileField(help_text="The file; its type is decided from its content, not its name.")
    kind = serializers.ChoiceField(choices=MEDIA_KINDS, required=False,
                                   help_text="What to send it as; by default decided from the content.")


# --- Responses --------------------------------------------------------------------------------
class WebhookSchema(serializers.Serializer):
    url = serializers.CharField(allow_null=True)
    verified_at = serializers.DateTimeField(allow_null=True)
    signing_secret = serializers.CharField(help_text="The HMAC key of X-Hub-Signature-256.")


class AppSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    tier = serializers.ChoiceField(choices=["free", "commercial"])
    status = serializers.ChoiceField(choices=["active", "suspended"])
    suspended_reason = serializers.CharField()
    bot = UserSchema(help_text="The app's account: users see its messages from it.")
    webhook_url = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class KeySchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The start of the key, to tell keys apart.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.SCOPES))
    state = serializers.ChoiceField(choices=["active", "revoked", "expired"])
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class KeyCreatedSchema(KeySchema):
    key = serializers.CharField(help_text="The API key itself: shown only now, stored only as a hash.")


class CommercialRequestSchema(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["pending", "approved", "refused"])
    use_description = serializers.CharField()
    requested_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField()


class UsageMonthSchema(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM (UTC)")
    messages = serializers.IntegerField()
    billable_messages = serializers.IntegerField(help_text="Sent on the commercial tier: what the fee is for.")


class UsageSchema(serializers.Serializer):
    app_id = serializers.IntegerField()
    tier = serializers.ChoiceField(choices=["free", "commercial"])
    monthly_cap = serializers.IntegerField(allow_null=True, help_text="null: no cap")
    remaining_this_month = serializers.IntegerField(allow_null=True)
    months = UsageMonthSchema(many=True, help_text="The last 12 months, newest first.")


class PublicAppSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    bot = UserSchema()
    opted_in = serializers.BooleanField(help_text="Whether you accept messages from this app.")


class ReportSchema(serializers.Serializer):
    id = serializers.IntegerField()
    app_id = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=["open", "dismissed", "upheld"])
    created_at = serializers.DateTimeField()


class MessageErrorSchema(serializers.Serializer):
    code = serializers.CharField()
    reason = serializers.CharField()


class SentMessageSchema(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["sent", "delivered", "read", "failed"])
    error = MessageErrorSchema(required=False, help_text="Only when failed.")


class SendMessageResponse(serializers.Serializer):
    messages = SentMessageSchema(many=True)


class AppMediaSchema(serializers.Serializer):
    id = serializers.IntegerField(help_text="Send it with {\"type\": kind, kind: {\"id\": id}}.")
    kind = serializers.ChoiceField(choices=MEDIA_KINDS, help_text="The message type it can be sent as.")
    mime_type = serializers.CharField(help_text="Decided from the file's content.")
    size = serializers.IntegerField(help_text="Bytes stored (images are re-encoded without metadata).")
    sha256 = serializers.CharField()
    width = serializers.IntegerField(allow_null=True, help_text="images")
    height = serializers.IntegerField(allow_null=True, help_text="images")
    filename = serializers.CharField(allow_blank=True, help_text="documents: the file's name as uploaded; \"\" otherwise")
    url = serializers.CharField(help_text="GET it (scope messages:read; Range supported)")


class MessageMediaSchema(serializers.Serializer):
    id = serializers.IntegerField()
    mime_type = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    filename = serializers.CharField(required=False, help_text="documents: the file's name as uploaded, when it had one")


class MessageContextSchema(serializers.Serializer):
    id = serializers.CharField(help_text="msg_... (the app's own) or in_... (the user's)")


class MessageStatusSchema(serializers.Serializer):
    id = serializers.CharField()
    to = serializers.CharField()
    type = serializers.ChoiceField(choices=["text", *MEDIA_KINDS, "removed"],
                                   help_text="removed: taken down by a moderator, its media no longer shown")
    status = serializers.ChoiceField(choices=["sent", "delivered", "read", "failed"])
    created_at = serializers.DateTimeField()
    image = MessageMediaSchema(required=False, help_text='type "image": its media (absent once deleted).')
    video = MessageMediaSchema(required=False, help_text='type "video": its media (absent once deleted).')
    audio = MessageMediaSchema(required=False, help_text='type "audio": its media (absent once deleted).')
    document = MessageMediaSchema(required=False, help_text='type "document": its media (absent once deleted).')
    context = MessageContextSchema(required=False, help_text="Only for a reply: the message it quotes.")
    error = MessageErrorSchema(required=False, help_text="Only when failed.")


class AppInfoSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    tier = serializers.ChoiceField(choices=["free", "commercial"])
    status = serializers.ChoiceField(choices=["active", "suspended"])
    bot = UserSchema()
    key = KeySchema(help_text="The key this request was made with.")
