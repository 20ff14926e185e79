"""Media through the developer API: uploads (scope media:write, the client API's checks and limits),
image/video/audio/document messages (the app's own media, of the message's type, under the same
opt-in rule, caps, billing and revocation as text), what the recipient sees, inbound media in
webhooks, and downloads (scope messages:read, only the app's media)."""

import hashlib

import pytest

from broker.services import media as broker_media
from broker.services import people, receipts
from broker.services.send import send_message as user_sends
from developer_api.errors import KeyNotValid
from developer_api.models import ApiKey, DeveloperApp, MonthlyUsage, OutboundMessage
from developer_api.services import apps, keys, messaging, webhooks
from storage.models import Media, Message
from tests import media_samples as samples
from tests.developer_api.conftest import tiers
from tests.developer_api.helpers import app_client, make_app, make_key, opted_in_user
from tests.factories import UserFactory, api_user, direct_conversation, user_with_token
from tests.ws import db, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db

MEDIA = "/developer/v1/media"
MESSAGES = "/developer/v1/messages"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def upload(client, content: bytes, kind: str | None = None, name="upload.bin", content_type="application/octet-stream"):
    data = {"file": samples.uploaded(content, name, content_type)}
    if kind:
        data["kind"] = kind
    return client.post(MEDIA, data, format="multipart")


def media_message(to: str, message_type: str, media_id, caption: str | None = None, **extra) -> dict:
    ref = {"id": media_id}
    if caption is not None:
        ref["caption"] = caption
    return {"to": to, "type": message_type, message_type: ref, **extra}


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def users_upload(user, content: bytes, kind: str | None = None, name: str = "file.bin") -> Media:
    return broker_media.upload(uploader=user, file=samples.uploaded(content, name), kind=kind)


# --- uploading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content,kind,expected_kind,mime", [
    (samples.image_bytes("JPEG"), None, "image", "image/jpeg"),
    (samples.image_bytes("PNG"), "image", "image", "image/png"),
    (samples.MP4, None, "video", "video/mp4"),
    (samples.WEBM, "video", "video", "video/webm"),
    (samples.OGG_OPUS, None, "audio", "audio/ogg"),
    (samples.M4A, "audio", "audio", "audio/mp4"),
    (samples.PDF, None, "document", "application/pdf"),
    (samples.image_bytes("JPEG"), "document", "document", "image/jpeg"),  # a photo sent as a file
])
def test_an_app_uploads_media_as_its_account(content, kind, expected_kind, mime):
    app, client = app_client(scopes=["media:write"])

    response = upload(client, content, kind, name="not-what-it-says.exe", content_type="text/html")

    assert response.status_code == 201, response.json()
    media = response.json()
    assert (media["kind"], media["mime_type"]) == (expected_kind, mime)
    assert media["url"] == f"/developer/v1/media/{media['id']}" and media["size"] > 0
    assert media["filename"] == ("not-what-it-says.exe" if expected_kind == "document" else "")
    assert Media.objects.get(pk=media["id"]).uploader_id == app.bot_id


def test_a_key_revoked_while_its_upload_comes_in_leaves_nothing_stored(media_root, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    app, client = app_client(scopes=["media:write"])
    store = broker_media.upload

    def stored_as_the_owner_revokes_the_key(**kwargs):
        media = store(**kwargs)  # minutes of a large file, say
        keys.revoke_key(key=ApiKey.objects.get(app=app))
        return media

    monkeypatch.setattr(broker_media, "upload", stored_as_the_owner_revokes_the_key)
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the deletion commits
        response = upload(client, samples.PDF)

    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert not Media.objects.exists() and stored_files(media_root) == []


def test_uploading_needs_the_media_write_scope(media_root):
    _, client = app_client(scopes=["messages:send", "messages:read", "webhooks:manage"])

    response = upload(client, samples.PDF)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope" and "media:write" in response.json()["error"]["message"]
    assert not Media.objects.exists() and stored_files(media_root) == []


def test_content_not_of_the_declared_kind_is_refused_as_in_the_client_api(media_root):
    _, client = app_client()

    mismatch = upload(client, samples.PDF, "image", name="holiday.jpg", content_type="image/jpeg")
    unknown_kind = upload(client, samples.OGG_OPUS, "voice")  # the client API's word; apps say audio
    no_file = client.post(MEDIA, {"kind": "image"}, format="multipart")
    empty = upload(client, b"")
    as_json = client.post(MEDIA, {"file": "aGVsbG8="})

    assert mismatch.status_code == 400 and mismatch.json()["error"]["field"] == "file"
    assert "image" in mismatch.json()["error"]["message"]
    assert unknown_kind.status_code == 400 and unknown_kind.json()["error"]["field"] == "kind"
    assert no_file.status_code == 400 and no_file.json()["error"]["field"] == "file"
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "file"
    assert as_json.status_code == 415
    assert not Media.objects.exists() and stored_files(media_root) == []


def test_a_file_over_its_kinds_limit_is_413_too_large(settings, media_root):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 16 * 1024 * 1024, "video": 64 * 1024 * 1024, "voice": 2048, "document": 100 * 1024 * 1024}}
    _, client = app_client()

    response = upload(client, samples.OGG_OPUS + b"\x00" * 2048, "audio")

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "2048 bytes" in error["message"]
    assert stored_files(media_root) == []


def test_a_body_over_every_limit_is_refused_before_it_is_read(settings):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 100, "video": 100, "voice": 100, "document": 100}}
    _, client = app_client()

    response = upload(client, b"x" * 200_000)

    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


@pytest.mark.django_db(transaction=True)
async def test_an_upload_of_undeclared_length_is_411_length_required(media_root):
    from asgiref.sync import sync_to_async

    from tests.frontdesk.test_api_media import asgi_upload

    _, raw = await sync_to_async(lambda: make_key(make_app()))()

    status, answer = await asgi_upload(MEDIA, raw, samples.PDF, chunked=True)

    assert (status, answer["error"]["code"]) == (411, "length_required")
    assert not await sync_to_async(Media.objects.exists)()
    status, answer = await asgi_upload(MEDIA, raw, samples.PDF, chunked=False)
    assert status == 201 and answer["kind"] == "document"


def test_uploads_count_against_the_rate_limits(developer_settings):
    developer_settings(TIERS=tiers(free={"KEY_RATE": (1, 3600)}))
    _, client = app_client()

    first, second = upload(client, samples.PDF), upload(client, samples.PDF)

    assert first.status_code == 201
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited"


# --- sending -----------------------------------------------------------------------------------
def test_an_app_sends_a_photo_with_a_caption_and_the_user_sees_it():
    app, client = app_client()
    user, user_client = api_user()
    apps.opt_in(app=app, user=user)
    media = upload(client, samples.image_bytes("JPEG", size=(640, 480))).json()

    response = client.post(MESSAGES, media_message(user.phone_number, "image", media["id"], "Your receipt"))

    assert response.status_code == 201, response.json()
    [sent] = response.json()["messages"]
    assert sent["status"] == "sent"
    [conversation] = user_client.get("/api/v1/conversations").json()
    seen = conversation["last_message"]
    assert seen["sender"] == app.bot_id and seen["text"] == "Your receipt"
    assert seen["media"]["id"] == media["id"] and seen["media"]["kind"] == "image"
    assert seen["media"]["sha256"] == media["sha256"]
    # The user downloads the photo (and its thumbnail) through the client API.
    download = user_client.get(seen["media"]["url"])
    assert download.status_code == 200 and hashlib.sha256(body(download)).hexdigest() == media["sha256"]
    assert user_client.get(seen["media"]["thumbnail_url"]).status_code == 200
    # Its status reports the type and the media.
    assert client.get(f"{MESSAGES}/{sent['id']}").json() == {
        "id": sent["id"], "to": user.phone_number, "type": "image", "status": "sent",
        "created_at": client.get(f"{MESSAGES}/{sent['id']}").json()["created_at"],
        "image": {"id": media["id"], "mime_type": "image/jpeg", "sha256": media["sha256"], "size": media["size"]},
    }


@pytest.mark.parametrize("message_type,content,caption,user_kind", [
    ("video", samples.MP4, "The route", "video"),
    ("audio", samples.OGG_OPUS, None, "voice"),
    ("document", samples.PDF, "Invoice 17", "document"),
])
def test_each_media_type_reaches_the_user(message_type, content, caption, user_kind):
    app, client = app_client()
    user = opted_in_user(app)
    media_id = upload(client, content).json()["id"]

    response = client.post(MESSAGES, media_message(user.phone_number, message_type, media_id, caption))

    assert response.status_code == 201, response.json()
    sent_id = response.json()["messages"][0]["id"]
    message = Message.objects.select_related("media").get(outbound__public_id=sent_id)
    assert message.media_id == media_id and message.media.kind == user_kind and message.text == (caption or "")
    status = client.get(f"{MESSAGES}/{sent_id}").json()
    assert status["type"] == message_type and status[message_type]["id"] == media_id


@pytest.mark.django_db(transaction=True)
async def test_the_recipient_gets_the_media_message_over_the_websocket(sockets):  # noqa: F811
    @db
    def setup():
        app, client = app_client()
        user, token = user_with_token()
        apps.opt_in(app=app, user=user)
        return app, client, user, token

    app, client, user, token = await setup()
    device = await sockets(token)
    media = await db(lambda: upload(client, samples.image_bytes("PNG")).json())()

    response = await db(lambda: client.post(MESSAGES, media_message(user.phone_number, "image", media["id"], "Hi")))()

    assert response.status_code == 201
    event = await device.receive_type("message.new")
    assert event["message"]["sender"] == app.bot_id and event["message"]["text"] == "Hi"
    assert event["message"]["media"]["id"] == media["id"] and event["message"]["media"]["mime_type"] == "image/png"



def test_a_repeated_client_id_returns_the_first_media_message():
    app, client = app_client()
    user = opted_in_user(app)
    media_id = upload(client, samples.PDF).json()["id"]

    first = client.post(MESSAGES, media_message(user.phone_number, "document", media_id, client_id="doc-1"))
    again = client.post(MESSAGES, media_message(user.phone_number, "document", media_id, client_id="doc-1"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["messages"][0]["id"] == again.json()["messages"][0]["id"]
    assert Message.objects.count() == 1


def test_media_that_is_not_the_apps_is_not_found():
    app, client = app_client()
    user = opted_in_user(app)
    _, other_app = app_client()
    others = upload(other_app, samples.image_bytes()).json()["id"]
    stranger = UserFactory()
    strangers = users_upload(stranger, samples.image_bytes()).pk
    # Media the user sent someone else: the app is not in that conversation.
    sent_elsewhere = users_upload(user, samples.image_bytes()).pk
    user_sends(sender=user, conversation_id=direct_conversation(user, stranger).pk, client_id="x", media_id=sent_elsewhere)

    for media_id in (others, strangers, sent_elsewhere, 10**9):
        response = client.post(MESSAGES, media_message(user.phone_number, "image", media_id))
        assert response.status_code == 404, media_id
        assert response.json()["error"] == {"code": "not_found", "field": "image.id",
                                            "message": f"This app has no media {media_id}."}
    assert not OutboundMessage.objects.exists() and not MonthlyUsage.objects.filter(messages__gt=0).exists()
    assert not Message.objects.filter(sender=app.bot).exists()


def test_media_a_user_sent_the_app_may_be_sent_on():
    app, client = app_client()
    user, other = opted_in_user(app), opted_in_user(app)
    photo = users_upload(user, samples.image_bytes())
    user_sends(sender=user, conversation_id=direct_conversation(user, app.bot).pk, client_id="p", media_id=photo.pk)

    response = client.post(MESSAGES, media_message(other.phone_number, "image", photo.pk))

    assert response.status_code == 201


@pytest.mark.parametrize("content,upload_kind,message_type,stored_as", [
    (samples.PDF, None, "image", "document"),
    (samples.image_bytes(), None, "document", "image"),
    (samples.OGG_OPUS, None, "video", "audio"),
    (samples.MP4, "video", "audio", "video"),
])
def test_media_of_another_type_is_refused_naming_the_field(content, upload_kind, message_type, stored_as):
    app, client = app_client()
    user = opted_in_user(app)
    media_id = upload(client, content, upload_kind).json()["id"]

    response = client.post(MESSAGES, media_message(user.phone_number, message_type, media_id))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["field"] == f"{message_type}.id"
    assert f"is a{'n' if stored_as[0] in 'aeiou' else ''} {stored_as}" in error["message"]
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


@pytest.mark.parametrize("message, field", [
    ({"type": "image"}, "image.id"),
    ({"type": "image", "image": {"link": "https://example.com/a.jpg"}}, "image.id"),
    ({"type": "image", "image": {"id": "x"}}, "image.id"),
    ({"type": "image", "text": {"body": "no image"}}, "image.id"),
    ({"type": "audio", "audio": {"id": 1, "caption": "audio has none"}}, "audio.caption"),
    ({"type": "image", "image": {"id": 1, "caption": "x" * 4097}}, "image.caption"),
    ({"type": "image", "image": {"id": 1, "caption": "nul \x00"}}, "image.caption"),
])
def test_malformed_media_messages_name_the_field(message, field):
    app, client = app_client()
    user = opted_in_user(app)

    response = client.post(MESSAGES, {"to": user.phone_number, **message})

    assert response.status_code == 400 and response.json()["error"]["field"] == field


def test_a_media_message_without_its_media_says_what_it_needs_in_plain_english():
    app, client = app_client()
    user = opted_in_user(app)

    image = client.post(MESSAGES, {"to": user.phone_number, "type": "image"}).json()["error"]["message"]
    video = client.post(MESSAGES, {"to": user.phone_number, "type": "video"}).json()["error"]["message"]

    assert image.startswith('An image message needs image: {"id": <media id>}')
    assert video.startswith('A video message needs video: {"id": <media id>}')


@pytest.mark.parametrize("message_type", ["sticker", "location", "reaction", "voice"])
def test_other_types_are_unsupported(message_type):
    app, client = app_client()
    user = opted_in_user(app)

    response = client.post(MESSAGES, {"to": user.phone_number, "type": message_type, message_type: {"id": 1}})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_type" and response.json()["error"]["field"] == "type"
    assert "image, video, audio, document" in response.json()["error"]["message"]


def test_media_messages_need_an_opted_in_recipient():
    app, client = app_client()
    media_id = upload(client, samples.image_bytes()).json()["id"]
    stranger = UserFactory()

    response = client.post(MESSAGES, media_message(stranger.phone_number, "image", media_id))

    assert response.status_code == 403 and response.json()["error"]["code"] == "not_opted_in"
    assert not Message.objects.exists()


def test_media_messages_count_toward_the_monthly_cap(developer_settings):
    developer_settings(TIERS=tiers(free={"MONTHLY_MESSAGES": 1}))
    app, client = app_client()
    user = opted_in_user(app)
    media_id = upload(client, samples.PDF).json()["id"]

    first = client.post(MESSAGES, media_message(user.phone_number, "document", media_id))
    second = client.post(MESSAGES, media_message(user.phone_number, "document", media_id))

    assert first.status_code == 201
    assert second.status_code == 429 and second.json()["error"]["code"] == "monthly_cap_reached"
    assert client.get("/developer/v1/usage").json()["months"][0]["messages"] == 1


def test_commercial_media_messages_are_billable():
    app, client = app_client()
    DeveloperApp.objects.filter(pk=app.pk).update(tier="commercial")
    user = opted_in_user(app)
    media_id = upload(client, samples.MP4).json()["id"]

    sent_id = client.post(MESSAGES, media_message(user.phone_number, "video", media_id)).json()["messages"][0]["id"]

    record = OutboundMessage.objects.get(public_id=sent_id)
    assert record.billable and record.message_type == "video" and record.media_id == media_id
    assert client.get("/developer/v1/usage").json()["months"][0]["billable_messages"] == 1


def test_a_media_send_that_authenticated_before_the_revocation_is_refused_after_it():
    app = make_app()
    key, raw = make_key(app)
    user = opted_in_user(app)
    media = broker_media.upload(uploader=app.bot, file=samples.uploaded(samples.PDF))
    authenticated = ApiKey.objects.select_related("app", "app__bot", "app__owner").get(pk=key.pk)

    keys.revoke_key(key=key)  # between the request's authentication and its send

    with pytest.raises(KeyNotValid):
        messaging.send_message(api_key=authenticated, to=user.phone_number, message_type="document",
                               media={"id": media.pk})
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def test_a_blocked_recipient_makes_a_failed_media_message_that_still_reports_its_media():
    app, client = app_client()
    user = opted_in_user(app)
    people.block_user(blocker=user, user_id=app.bot_id)
    media = upload(client, samples.image_bytes()).json()

    response = client.post(MESSAGES, media_message(user.phone_number, "image", media["id"]))

    [failed] = response.json()["messages"]
    assert response.status_code == 201 and failed["status"] == "failed"
    status = client.get(f"{MESSAGES}/{failed['id']}").json()
    assert status["type"] == "image" and status["image"]["id"] == media["id"] and status["status"] == "failed"
    assert not Message.objects.exists()


def test_an_apps_photo_taken_down_reads_as_removed_though_another_message_still_carries_it(
        django_capture_on_commit_callbacks):
    """The app sent one photo to two people; an operator takes one message down. Reading that
    message says it is removed and shows no media; the other still shows its photo."""
    from broker.services import moderation

    app, client = app_client()
    first, second = opted_in_user(app), opted_in_user(app)
    media = upload(client, samples.image_bytes()).json()
    taken = client.post(MESSAGES, media_message(first.phone_number, "image", media["id"], "50% off")).json()
    kept = client.post(MESSAGES, media_message(second.phone_number, "image", media["id"], "Your receipt")).json()
    taken_id, kept_id = taken["messages"][0]["id"], kept["messages"][0]["id"]

    with django_capture_on_commit_callbacks(execute=True):
        moderation.take_down(message_id=OutboundMessage.objects.get(public_id=taken_id).message_id)

    removed = client.get(f"{MESSAGES}/{taken_id}").json()
    assert removed == {"id": taken_id, "to": first.phone_number, "type": "removed", "status": "sent",
                       "created_at": removed["created_at"]}
    assert client.get(f"{MESSAGES}/{kept_id}").json()["image"]["id"] == media["id"]


# --- inbound media and downloads ---------------------------------------------------------------
def test_an_inbound_media_message_reaches_the_webhook_with_its_type_and_media(
        receiver, django_capture_on_commit_callbacks):
    app, client = app_client()
    webhooks.set_webhook(app=app, url=receiver.url, verify_token=receiver.verify_token)
    user = UserFactory(display_name="Ada")
    conversation = direct_conversation(user, app.bot)
    photo = users_upload(user, samples.image_bytes("PNG"))
    voice = users_upload(user, samples.OGG_OPUS, "voice")
    document = users_upload(user, samples.PDF, "document", name="Order 1123.pdf")

    with django_capture_on_commit_callbacks(execute=True):
        first, _ = user_sends(sender=user, conversation_id=conversation.pk, client_id="p", media_id=photo.pk,
                              text="The broken part")
    with django_capture_on_commit_callbacks(execute=True):
        user_sends(sender=user, conversation_id=conversation.pk, client_id="v", media_id=voice.pk)
    with django_capture_on_commit_callbacks(execute=True):
        user_sends(sender=user, conversation_id=conversation.pk, client_id="d", media_id=document.pk)
    assert webhooks.deliver_due() == 3

    image_event, voice_event, document_event = [event["message"] for event in receiver.events()]
    assert document_event["document"]["filename"] == "Order 1123.pdf"  # the name the user's file had
    assert image_event == {
        "id": f"in_{first.pk}", "from": user.phone_number, "from_user_id": user.pk, "from_name": "Ada",
        "type": "image",
        "image": {"id": photo.pk, "mime_type": "image/png", "sha256": photo.sha256, "size": photo.size,
                  "caption": "The broken part"},
        "created_at": image_event["created_at"],
    }
    assert voice_event["type"] == "audio" and voice_event["audio"] == {
        "id": voice.pk, "mime_type": "audio/ogg", "sha256": voice.sha256, "size": voice.size}
    # The app downloads what it was sent, by the id in the event.
    download = client.get(f"{MEDIA}/{image_event['image']['id']}")
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    assert hashlib.sha256(body(download)).hexdigest() == photo.sha256


def test_an_app_downloads_only_its_own_and_received_media():
    app, client = app_client()
    user = opted_in_user(app)
    own = upload(client, samples.MP4).json()
    received = users_upload(user, samples.PDF)
    user_sends(sender=user, conversation_id=direct_conversation(user, app.bot).pk, client_id="d", media_id=received.pk)
    _, other_app = app_client()
    others = upload(other_app, samples.PDF).json()["id"]
    not_sent = users_upload(user, samples.image_bytes()).pk

    mine = client.get(own["url"])
    theirs = client.get(f"{MEDIA}/{received.pk}")

    assert mine.status_code == 200 and body(mine) == samples.MP4 and mine["Content-Type"] == "video/mp4"
    assert theirs.status_code == 200 and body(theirs) == samples.PDF
    assert theirs["Content-Disposition"] == 'attachment; filename="file.bin"'
    for media_id in (others, not_sent, 10**9):
        refused = client.get(f"{MEDIA}/{media_id}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", media_id
    assert client.get(f"{MEDIA}/abc").status_code == 404


def test_an_app_cannot_download_the_profile_photo_of_someone_it_chats_with():
    """Apps are told people's names, never their photos: a photo an app was not sent stays "not
    found" to it, as to a stranger, though people in a chat with its owner may see it."""
    from broker.services import accounts

    app, client = app_client()
    user = opted_in_user(app)
    direct_conversation(user, app.bot)
    photo = users_upload(user, samples.image_bytes())
    accounts.update_profile(user=user, photo_media_id=photo.pk)

    downloaded = client.get(f"{MEDIA}/{photo.pk}")
    sent_on = client.post(MESSAGES, media_message(user.phone_number, "image", photo.pk))

    assert downloaded.status_code == 404 and downloaded.json()["error"]["code"] == "not_found"
    assert sent_on.status_code == 404 and sent_on.json()["error"]["field"] == "image.id"
    assert not Message.objects.filter(sender=app.bot).exists()


def test_downloads_support_range():
    _, client = app_client()
    media = upload(client, samples.MP4).json()
    n = len(samples.MP4)

    part = client.get(media["url"], HTTP_RANGE="bytes=0-9")
    outside = client.get(media["url"], HTTP_RANGE=f"bytes={n}-")

    assert part.status_code == 206 and body(part) == samples.MP4[:10] and part["Content-Range"] == f"bytes 0-9/{n}"
    assert outside.status_code == 416 and outside["Content-Range"] == f"bytes */{n}"
    assert outside.json()["error"]["code"] == "range_not_satisfiable"


def test_downloading_needs_the_read_scope():
    app, writer = app_client(scopes=["media:write"])
    media = upload(writer, samples.PDF).json()

    response = writer.get(media["url"])

    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert "messages:read" in response.json()["error"]["message"]


def test_a_user_who_sends_the_app_media_opts_in_and_the_app_can_answer(django_capture_on_commit_callbacks):
    app, client = app_client()
    user = UserFactory()
    photo = users_upload(user, samples.image_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        user_sends(sender=user, conversation_id=direct_conversation(user, app.bot).pk, client_id="p",
                   media_id=photo.pk)
    media_id = upload(client, samples.PDF).json()["id"]

    response = client.post(MESSAGES, media_message(user.phone_number, "document", media_id, "Your copy"))

    assert response.status_code == 201
    message = Message.objects.get(outbound__public_id=response.json()["messages"][0]["id"])
    receipts.mark_read(user=user, conversation_id=message.conversation_id, seq=message.seq)
    assert client.get(f"{MESSAGES}/{response.json()['messages'][0]['id']}").json()["status"] == "read"
