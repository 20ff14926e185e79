"""Request shapes (validated here, then handed to broker services) and response shapes (declared
for the OpenAPI schema; the tests validate real responses against it, so the two cannot drift)."""

from rest_framework import serializers

from broker.text import json_type


class StringField(serializers.CharField):
    """A CharField that takes only a JSON string. DRF's own turns a number into its digits, so that
    `42` and `"42"` would name one thing; an identifier the client picks (a message's `client_id`)
    is refused as a number, as the websocket refuses it."""

    default_error_messages = {"not_a_string": "{field} must be a string, not {got}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", field=self.field_name, got=json_type(data))
        return super().to_internal_value(data)


# --- Requests -------------------------------------------------------------------------------
class RegisterRequest(serializers.Serializer):
    phone_number = serializers.CharField(max_length=32, help_text="International form, e.g. +12025550123.")
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
    display_name = serializers.CharField(max_length=64)
    device_name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class LoginRequest(serializers.Serializer):
    phone_number = serializers.CharField(max_length=32)
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
    device_name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ProfileUpdateRequest(serializers.Serializer):
    display_name = serializers.CharField(max_length=64, required=False)
    about = serializers.CharField(max_length=140, required=False, allow_blank=True)
    photo_media_id = serializers.IntegerField(
        min_value=1, max_value=2**62, required=False, allow_null=True,
        help_text="An image you uploaded with POST media, as your photo; null removes it. Left out, the photo stays.")


class PasswordChangeRequest(serializers.Serializer):
    current_password = serializers.CharField(trim_whitespace=False, max_length=4096)
    new_password = serializers.CharField(trim_whitespace=False, max_length=4096)


class PasswordChangeResponse(serializers.Serializer):
    devices_logged_out = serializers.IntegerField(help_text="Your other devices, now logged out.")


class DeviceSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True, help_text="as given at login (device_name)")
    created_at = serializers.DateTimeField(help_text="when it logged in")
    last_used_at = serializers.DateTimeField(allow_null=True)
    current = serializers.BooleanField(help_text="the device making this request")


class ContactRequest(serializers.Serializer):
    phone_number = serializers.CharField(max_length=32, required=False)
    user_id = serializers.IntegerField(min_value=1, required=False)
    name = serializers.CharField(
        max_length=64, required=False, allow_blank=True,
        help_text='your name for them; for someone already a contact, "" clears it and leaving it out keeps it',
    )


class ConversationRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["direct", "group"])
    phone_number = serializers.CharField(max_length=32, required=False, help_text="direct: the other person")
    user_id = serializers.IntegerField(min_value=1, required=False, help_text="direct: the other person")
    title = serializers.CharField(max_length=100, required=False, help_text="group: its title")
    member_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=1000, help_text="group: members to add"
    )


class MembersAddRequest(serializers.Serializer):
    user_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)


class MemberRemoveRequest(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)


class ConversationUpdateRequest(serializers.Serializer):
    photo_media_id = serializers.IntegerField(
        min_value=1, max_value=2**62, allow_null=True,
        help_text="groups (admins): an image you uploaded with POST media, as the group's photo; null removes it")


class MuteRequest(serializers.Serializer):
    duration = serializers.IntegerField(
        min_value=60, max_value=366 * 24 * 3600, allow_null=True,
        help_text="seconds (8 hours: 28800, a week: 604800), or null: until you unmute it")


class MemberRoleRequest(serializers.Serializer):
    role = serializers.ChoiceField(choices=["admin", "member"], help_text="admin: make them an admin; member: dismiss "
                                   "them as admin (yourself included, unless you are the last admin)")


class MessageSendRequest(serializers.Serializer):
    client_id = StringField(max_length=64, trim_whitespace=False,
                            help_text="A string unique per message (a number is refused); a retry with the same id "
                                      "returns the same message.")
    text = StringField(trim_whitespace=False, required=False, allow_blank=True,
                       help_text="Required without media_id; with it, an optional caption.")
    media_id = serializers.IntegerField(min_value=1, required=False,
                                        help_text="A file uploaded with POST media (or one you can see, to forward).")
    reply_to = serializers.IntegerField(min_value=1, max_value=2**62, required=False, allow_null=True,
                                        help_text="The seq of the message this one replies to (quotes): a person's "
                                                  "message in this conversation that you can see. 404 on reply_to "
                                                  "for none there, 400 for a system message.")


class ForwardSource(serializers.Serializer):
    conversation = serializers.IntegerField(min_value=1, max_value=2**62, help_text="The chat it is in.")
    seq = serializers.IntegerField(min_value=1, max_value=2**62, help_text="Its seq there.")


class ForwardRequest(serializers.Serializer):
    client_id = StringField(max_length=64, trim_whitespace=False,
                            help_text="A string unique per message, as for any send: a retry returns the same copy.")
    forward = ForwardSource(help_text="The message to send on: a person's message you can see, not a system "
                                      "notice nor one deleted.")


class MessageEditRequest(serializers.Serializer):
    text = StringField(trim_whitespace=False, allow_blank=True,
                                 help_text="The message's new text; for a message with media, its new caption (may "
                                           "be \"\").")


class ReactionRequest(serializers.Serializer):
    # Checked to be one emoji by the service (broker.services.reactions), which the websocket would share.
    emoji = StringField(trim_whitespace=False, help_text="One emoji, such as \"👍\": your reaction, replacing any "
                                                         "you had on this message.")


class MediaUploadRequest(serializers.Serializer):
    file = serializers.FileField(help_text="The file; its type is decided from its content, not its name.")
    kind = serializers.ChoiceField(choices=["image", "video", "voice", "document"], required=False,
                                   help_text="What to send it as; by default decided from the content.")


class WatermarkRequest(serializers.Serializer):
    seq = serializers.IntegerField(min_value=0, max_value=2**62)


class HistoryQuery(serializers.Serializer):
    before_seq = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    after_seq = serializers.IntegerField(min_value=0, max_value=2**62, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=200, required=False, default=50)


class SearchQuery(serializers.Serializer):
    q = serializers.CharField(max_length=100, help_text="What to look for in the messages' texts and captions, in any "
                                                        "case (1 to 100 characters, not only spaces).")
    before_seq = serializers.IntegerField(min_value=1, max_value=2**62, required=False,
                                          help_text="The next page: matches older than this seq.")
    limit = serializers.IntegerField(min_value=1, max_value=50, required=False, default=20)


# --- Responses (documentation of the shapes built in broker.events and api.payloads) ----------
class PhotoSchema(serializers.Serializer):
    id = serializers.IntegerField(help_text="the image's media id; a new photo has a new id")
    url = serializers.CharField(help_text="GET the full image")
    thumbnail_url = serializers.CharField(help_text="GET a small JPEG (at most 320 px), for avatars")


class UserSchema(serializers.Serializer):
    id = serializers.IntegerField()
    phone_number = serializers.CharField()
    display_name = serializers.CharField()
    about = serializers.CharField()
    is_business = serializers.BooleanField(help_text="The account of a developer app: show a \"business\" badge.")
    photo = PhotoSchema(allow_null=True, help_text="their profile photo; null: none (show their initials)")


class AuthResponse(serializers.Serializer):
    user = UserSchema()
    token = serializers.CharField(help_text="Bearer token of this device; shown only now.")


class MediaSchema(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["image", "video", "voice", "document"])
    mime_type = serializers.CharField(help_text="Decided from the file's content.")
    size = serializers.IntegerField(help_text="Bytes stored (images are re-encoded without metadata).")
    sha256 = serializers.CharField()
    width = serializers.IntegerField(allow_null=True, help_text="images")
    height = serializers.IntegerField(allow_null=True, help_text="images")
    duration = serializers.FloatField(allow_null=True, help_text="seconds, when known")
    name = serializers.CharField(allow_blank=True, help_text="documents: the file's name as uploaded; \"\" otherwise")
    url = serializers.CharField(help_text="GET it (with Range, to seek)")
    thumbnail_url = serializers.CharField(allow_null=True, help_text="images: a small JPEG")


class ReactionSchema(serializers.Serializer):
    emoji = serializers.CharField()
    user = serializers.IntegerField(help_text="who reacted")


class MessageSchema(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.IntegerField()
    seq = serializers.IntegerField()
    sender = serializers.IntegerField(allow_null=True, help_text="null for system messages")
    kind = serializers.ChoiceField(choices=["text", "system", "removed"],
                                   help_text="removed: taken down by a moderator, its text and media gone")
    text = serializers.CharField()
    # A DictField, not a JSONField: drf-spectacular documents a nullable JSONField as
    # oneOf [{}, null], which a null (every text message) matches twice and so fails.
    event = serializers.DictField(allow_null=True, help_text="system messages: what happened")
    media = MediaSchema(allow_null=True, help_text="a photo, video, voice message or document; text is its caption")
    client_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    reply_to = serializers.IntegerField(allow_null=True, help_text="the seq of the message this one replies to "
                                                                    "(quotes), in the same conversation; null for none")
    forwarded = serializers.BooleanField(help_text="sent on from another chat (POST conversations/{id}/forward)")
    edited_at = serializers.DateTimeField(allow_null=True, help_text="when its sender last edited its text (PATCH "
                                                                     "conversations/{id}/messages/{seq}); null if never")
    status = serializers.ChoiceField(choices=["sent", "delivered", "read"])
    reactions = ReactionSchema(many=True, help_text="one per person who reacted, oldest first; [] in a message just "
                                                    "sent and in a conversation's last_message")


class MessagePageSchema(serializers.Serializer):
    results = MessageSchema(many=True)
    has_more = serializers.BooleanField()


class ContactSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    user = UserSchema()


class MemberSchema(serializers.Serializer):
    user = UserSchema()
    role = serializers.ChoiceField(choices=["admin", "member"])
    joined_after_seq = serializers.IntegerField(help_text="Their history starts after this seq: someone added later "
                                                          "has none of what came before (0 for a founding member)")
    delivered_seq = serializers.IntegerField()
    read_seq = serializers.IntegerField()
    online = serializers.BooleanField(
        allow_null=True, help_text="null for someone whose presence you do not see: "
        "shown only for yourself and people you share a direct chat with, no block either way")
    last_seen = serializers.DateTimeField(allow_null=True, help_text="null where online is, or never seen")


class ConversationSchema(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["direct", "group"])
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    last_seq = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    left = serializers.BooleanField(help_text="A group you have left or were removed from: read-only, shown as it "
                                              "was when you went (title, members, history up to that notice).")
    role = serializers.ChoiceField(choices=["admin", "member"], allow_null=True,
                                   help_text="Yours; null in a group you have left.")
    delivered_seq = serializers.IntegerField()
    read_seq = serializers.IntegerField()
    last_message = MessageSchema(allow_null=True)
    members = MemberSchema(many=True)
    photo = PhotoSchema(allow_null=True, help_text="groups: the group's photo, or null; direct conversations: null "
                                                   "(show the other member's user photo)")
    muted = serializers.BooleanField(help_text="You muted it (PUT conversations/{id}/mute): your devices do not "
                                               "notify you of its messages. Never in a group you have left.")
    pinned_at = serializers.DateTimeField(allow_null=True, help_text="When you pinned it to the top of your list "
                                                                     "(PUT conversations/{id}/pin); null: not pinned")
    muted_until = serializers.DateTimeField(allow_null=True, help_text="When your mute ends; null when muted until "
                                                                       "you unmute it, or not muted")


class ErrorDetailSchema(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)
    retry_after = serializers.IntegerField(required=False)


class ErrorSchema(serializers.Serializer):
    error = ErrorDetailSchema()


class HealthSchema(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "error"])
    database = serializers.DictField()
