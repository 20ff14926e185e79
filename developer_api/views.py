"""The developer API's REST views: parse, call one service, reply.

- Owners (any logged-in user, with a device token or the browser session) manage their apps under
  /api/v1/developer/apps; users accept and report apps under /api/v1/apps and /api/v1/reports.
  These are part of the client API and its schema.
- Apps, with an API key, use /developer/v1/ (a schema of its own, see developer_api.schema).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from broker import events
from broker.media_http import LimitedUploadHandler, check_declared_length, media_response
from developer_api import payloads
from developer_api import serializers as s
from developer_api.authentication import ApiKeyAuthentication
from developer_api.models import ApiKey
from developer_api.ratelimit import take_tokens
from developer_api.services import apps, keys, messaging, spam, usage, webhooks
from developer_api.services import media as app_media

ERRORS = {code: OpenApiResponse(s.ErrorSchema) for code in (400, 401, 403, 404, 409, 429, 503)}
OWNER = ["developer"]
USERS = ["apps"]


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- owners -----------------------------------------------------------------------------------
class AppsView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.AppSchema(many=True), **ERRORS}, summary="Your apps")
    def get(self, request):
        return Response([payloads.app_payload(app) for app in apps.owned_apps(owner=request.user)])

    @extend_schema(tags=OWNER, request=s.AppCreateRequest, responses={201: s.AppSchema, **ERRORS},
                   summary="Register an app", description="The app gets an account of its own to message users from.")
    def post(self, request):
        data = validated(s.AppCreateRequest, request.data)
        app = apps.create_app(owner=request.user, **data)
        return Response(payloads.app_payload(app), status=status.HTTP_201_CREATED)


class AppDetailView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.AppSchema, **ERRORS})
    def get(self, request, app_id: int):
        return Response(payloads.app_payload(apps.owned_app(owner=request.user, app_id=app_id)))

    @extend_schema(tags=OWNER, request=s.AppUpdateRequest, responses={200: s.AppSchema, **ERRORS})
    def patch(self, request, app_id: int):
        data = validated(s.AppUpdateRequest, request.data)
        app = apps.update_app(app=apps.owned_app(owner=request.user, app_id=app_id), **data)
        return Response(payloads.app_payload(app))


class KeysView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.KeySchema(many=True), **ERRORS}, summary="The app's API keys")
    def get(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        return Response([payloads.key_payload(key) for key in keys.app_keys(app=app)])

    @extend_schema(tags=OWNER, request=s.KeyCreateRequest, responses={201: s.KeyCreatedSchema, **ERRORS},
                   summary="Make an API key",
                   description="The answer carries the key itself, the only time it is shown.")
    def post(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        data = validated(s.KeyCreateRequest, request.data)
        key, raw = keys.create_key(app=app, **data)
        return Response(payloads.key_payload(key, raw=raw), status=status.HTTP_201_CREATED)


class KeyDetailView(APIView):
    @extend_schema(tags=OWNER, responses={204: None, **ERRORS}, summary="Revoke an API key",
                   description="At once: requests with it, including sends already under way, are refused.")
    def delete(self, request, app_id: int, key_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        keys.revoke_key(key=keys.owned_key(app=app, key_id=key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommercialView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.CommercialRequestSchema(many=True), **ERRORS},
                   summary="Requests for commercial use")
    def get(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        requests = app.commercial_requests.order_by("-requested_at", "-pk")
        return Response([payloads.commercial_request_payload(r) for r in requests])

    @extend_schema(tags=OWNER, request=s.CommercialRequestCreate, responses={201: s.CommercialRequestSchema, **ERRORS},
                   summary="Ask for commercial use", description="An operator approves or refuses it.")
    def post(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        data = validated(s.CommercialRequestCreate, request.data)
        created = apps.request_commercial(app=app, **data)
        return Response(payloads.commercial_request_payload(created), status=status.HTTP_201_CREATED)


class OwnerWebhookView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.WebhookSchema, **ERRORS}, summary="The app's webhook")
    def get(self, request, app_id: int):
        return Response(webhooks.webhook_payload(apps.owned_app(owner=request.user, app_id=app_id)))

    @extend_schema(tags=OWNER, request=s.WebhookSetRequest, responses={200: s.WebhookSchema, **ERRORS},
                   summary="Set the webhook", description="After a verify-token handshake with the callback.")
    def put(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        data = validated(s.WebhookSetRequest, request.data)
        return Response(webhooks.webhook_payload(webhooks.set_webhook(app=app, **data)))

    @extend_schema(tags=OWNER, responses={204: None, **ERRORS}, summary="Remove the webhook")
    def delete(self, request, app_id: int):
        webhooks.clear_webhook(app=apps.owned_app(owner=request.user, app_id=app_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretView(APIView):
    @extend_schema(tags=OWNER, request=None, responses={200: s.WebhookSchema, **ERRORS},
                   summary="Make a new signing secret",
                   description="Events are signed with the new secret from now on; the old one stops verifying.")
    def post(self, request, app_id: int):
        app = apps.owned_app(owner=request.user, app_id=app_id)
        webhooks.rotate_secret(app=app)
        return Response(webhooks.webhook_payload(app))


class OwnerUsageView(APIView):
    @extend_schema(tags=OWNER, responses={200: s.UsageSchema, **ERRORS}, summary="Monthly usage")
    def get(self, request, app_id: int):
        return Response(usage.usage_report(app=apps.owned_app(owner=request.user, app_id=app_id)))


# --- users ------------------------------------------------------------------------------------
class PublicAppView(APIView):
    @extend_schema(tags=USERS, responses={200: s.PublicAppSchema, **ERRORS}, summary="An app, as users see it")
    def get(self, request, app_id: int):
        app = apps.public_app(app_id=app_id)
        opted = apps.has_opted_in(app=app, user_id=request.user.pk)
        return Response(payloads.public_app_payload(app, opted_in=opted))


class OptInView(APIView):
    @extend_schema(tags=USERS, request=None, responses={200: s.PublicAppSchema, **ERRORS}, summary="Accept an app",
                   description="The app may message you from now on (writing to its account does the same).")
    def post(self, request, app_id: int):
        app = apps.public_app(app_id=app_id)
        apps.opt_in(app=app, user=request.user)
        return Response(payloads.public_app_payload(app, opted_in=True))

    @extend_schema(tags=USERS, responses={204: None, **ERRORS}, summary="Stop an app messaging you")
    def delete(self, request, app_id: int):
        apps.opt_out(app=apps.public_app(app_id=app_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReportsView(APIView):
    @extend_schema(tags=USERS, request=s.ReportRequest, responses={201: s.ReportSchema, 200: s.ReportSchema, **ERRORS},
                   summary="Report an app as spam",
                   description="201 for a new report; 200 with your open report if you reported the app already.")
    def post(self, request):
        data = validated(s.ReportRequest, request.data)
        report, created = spam.report_app(reporter=request.user, **data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(payloads.report_payload(report), status=code)


# --- apps (API key) ---------------------------------------------------------------------------
class ApiKeyPermission(permissions.BasePermission):
    """The key's app is not suspended (403 app_suspended) and the key has the view's scope for the
    method (403 insufficient_scope)."""

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return False  # no key: 401 not_authenticated
        keys.check_app(request.auth)
        scope = getattr(view, "required_scopes", {}).get(request.method)
        if scope:
            keys.require_scope(request.auth, scope)
        return True


class AppApiView(APIView):
    """Base of the app-facing views: API key, scopes, and the per-app and per-key token buckets."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ApiKeyPermission]
    required_scopes: dict[str, str] = {}

    def check_throttles(self, request):
        key = request.auth
        limits = apps.tier_limits(key.app)
        # The key's bucket first: it is the one that usually refuses, and then the app's is untouched.
        # Each refusal says which bucket refused: a key's own rate, or the app's (all its keys).
        take_tokens((f"key:{key.pk}", *limits["KEY_RATE"], "Too many requests with this API key"),
                    (f"app:{key.app_id}", *limits["APP_RATE"], "Too many requests from this app (all its keys)"))


APP_ERRORS = {code: OpenApiResponse(s.ErrorSchema) for code in (400, 401, 403, 404, 429, 503)}
# Calls with a JSON body: 413 body_too_large over the REST body limit, 415 for anything but JSON.
BODY_ERRORS = {code: OpenApiResponse(s.ErrorSchema) for code in (413, 415)}


class AppInfoView(AppApiView):
    @extend_schema(tags=["app"], responses={200: s.AppInfoSchema, **APP_ERRORS}, summary="Your app and this key",
                   description="Needs no scope: a quick way to check a key.")
    def get(self, request):
        key = request.auth
        app = key.app
        return Response({"id": app.pk, "name": app.name, "tier": app.tier, "status": app.status,
                         "bot": events.user_payload(app.bot), "key": payloads.key_payload(key)})


class MessagesView(AppApiView):
    required_scopes = {"POST": "messages:send"}

    @extend_schema(
        tags=["messages"], request=s.SendMessageRequest,
        responses={201: s.SendMessageResponse, 200: s.SendMessageResponse, **APP_ERRORS, **BODY_ERRORS},
        summary="Send a message",
        description=(
            "Scope messages:send. The recipient must have opted in (messaged the app, or accepted it), "
            "else 403 not_opted_in. Types: \"text\" with text.body; \"image\", \"video\", \"audio\" or "
            "\"document\" with {\"id\": <media id>, \"caption\"?} under the type's name (no caption for audio), "
            "whose media the app uploaded with POST /developer/v1/media (or received from a user) as that kind: "
            "another app's media is 404, media of another kind 400 (field <type>.id); any other type is 400 "
            "unsupported_type. 201 for a new message; 200 with the earlier one for a repeated client_id. A "
            "recipient who blocked the app makes a message with status \"failed\". context: {\"message_id\"} makes it "
            "a reply quoting that message of the app's chat with the user (404 on context.message_id for none there)."
        ),
    )
    def post(self, request):
        data = validated(s.SendMessageRequest, request.data)
        message_type = data["type"]
        record, created = messaging.send_message(
            api_key=request.auth, to=data["to"], message_type=message_type, text=data.get("text"),
            media=data.get(message_type) if message_type in messaging.MEDIA_TYPES else None,
            client_id=data.get("client_id"), context=data.get("context"),
        )
        item = {k: v for k, v in messaging.message_payload(record).items() if k in ("id", "status", "error")}
        return Response({"messages": [item]}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageDetailView(AppApiView):
    required_scopes = {"GET": "messages:read"}

    @extend_schema(tags=["messages"], responses={200: s.MessageStatusSchema, **APP_ERRORS},
                   parameters=[OpenApiParameter("message_id", str, OpenApiParameter.PATH, description="msg_...")],
                   summary="A message's status",
                   description="Scope messages:read. A media message reports its media under its type; one a "
                               "moderator took down reads type \"removed\", without its media.")
    def get(self, request, message_id: str):
        record = messaging.find_message(app=request.auth.app, message_id=message_id)
        return Response(messaging.message_payload(record))


class MediaUploadView(AppApiView):
    required_scopes = {"POST": "media:write"}
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [LimitedUploadHandler(request)]  # before anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # the key, its scope and the rate limits first
        check_declared_length(request)  # then a body over every limit is refused unread

    @extend_schema(
        tags=["media"], request={"multipart/form-data": s.MediaUploadRequest},
        responses={201: s.AppMediaSchema, 413: OpenApiResponse(s.ErrorSchema, description="too_large"),
                   411: OpenApiResponse(s.ErrorSchema, description="length_required: no Content-Length."),
                   415: OpenApiResponse(s.ErrorSchema, description="Not multipart/form-data."), **APP_ERRORS},
        summary="Upload media",
        description=(
            "Scope media:write. Upload a photo, video, audio file or document (multipart field file), then send "
            "it with POST /developer/v1/messages. The kind is decided from the content: image (JPEG, PNG, WebP), "
            "video (MP4, WebM), audio (Ogg/Opus, WebM/Opus, MP4/AAC), document (anything else, or anything "
            "uploaded with kind=document). Content not of the declared kind is 400 (field file); a file over its "
            "kind's limit 413 too_large; a body without Content-Length (Transfer-Encoding: chunked) 411 "
            "length_required. Images are re-encoded without metadata. An upload no message carries is "
            "deleted after a grace period (24 hours by default)."
        ),
    )
    def post(self, request):
        data = validated(s.MediaUploadRequest, request.data)
        upload = data["file"]
        try:
            media = app_media.upload(app=request.auth.app, file=upload, kind=data.get("kind"), key=request.auth)
        finally:
            upload.close()  # a temporary file goes now, whatever happened
        return Response(app_media.media_payload(media), status=status.HTTP_201_CREATED)


class MediaDownloadView(AppApiView):
    required_scopes = {"GET": "messages:read"}
    @extend_schema(
        tags=["media"],
        responses={
            (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole file, as its MIME type."),
            (206, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The part asked for with Range."),
            416: OpenApiResponse(s.ErrorSchema, description="The Range lies outside the file."),
            **APP_ERRORS,
        },
        summary="Download media",
        description=(
            "Scope messages:read. Media the app uploaded, or that users sent it (the media id of an inbound "
            "message event); anything else is 404. Supports Range (one range)."
        ),
    )
    def get(self, request, media_id: int):
        media = app_media.readable_media(app=request.auth.app, media_id=media_id)
        return media_response(request, media)


class AppWebhookView(AppApiView):
    required_scopes = {"GET": "webhooks:manage", "PUT": "webhooks:manage", "DELETE": "webhooks:manage"}

    @extend_schema(tags=["webhooks"], responses={200: s.WebhookSchema, **APP_ERRORS}, summary="Your webhook",
                   description="Scope webhooks:manage.")
    def get(self, request):
        return Response(webhooks.webhook_payload(request.auth.app))

    @extend_schema(tags=["webhooks"], request=s.WebhookSetRequest,
                   responses={200: s.WebhookSchema, **APP_ERRORS, **BODY_ERRORS},
                   summary="Set your webhook",
                   description="Scope webhooks:manage. The callback must answer GET ?hub.mode=subscribe&"
                               "hub.verify_token=...&hub.challenge=... with 200 and the challenge.")
    def put(self, request):
        data = validated(s.WebhookSetRequest, request.data)
        return Response(webhooks.webhook_payload(webhooks.set_webhook(app=request.auth.app, **data, key=request.auth)))

    @extend_schema(tags=["webhooks"], responses={204: None, **APP_ERRORS}, summary="Remove your webhook",
                   description="Scope webhooks:manage.")
    def delete(self, request):
        webhooks.clear_webhook(app=request.auth.app)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AppUsageView(AppApiView):
    @extend_schema(tags=["app"], responses={200: s.UsageSchema, **APP_ERRORS}, summary="Your monthly usage")
    def get(self, request):
        return Response(usage.usage_report(app=request.auth.app))
