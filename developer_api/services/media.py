"""Apps' media: uploads made by the app's bot account, and the files an app may download.

Everything about the files themselves (sniffing, re-encoding, limits, dedupe, who may read what)
is the broker's (broker.services.media); here are the developer API's words for it. Apps speak of
the message types of the WhatsApp Cloud API, image, video, audio and document, which are the
broker's media kinds with "audio" for the broker's "voice":

- image: JPEG, PNG or WebP (re-encoded without metadata);
- video: MP4 or WebM;
- audio: Ogg/Opus, WebM/Opus or MP4/AAC;
- document: any file uploaded as a document, or not recognised as one of the above.

A media message must be sent as the type its media was stored as: a JPEG uploaded without `kind`
is an image, and sending it as a document is refused (upload it with kind "document" to send a
photo as a file), so what the recipient sees always matches the type the app reports.
"""

from broker.errors import BrokerError, InvalidInput, NotFound
from broker.services import media as broker_media
from broker.services.people import parse_id
from developer_api.models import DeveloperApp
from storage.models import Media

Kind = Media.Kind

# Message type (developer API) -> media kind (broker), and back.
KIND_OF_TYPE = {"image": Kind.IMAGE, "video": Kind.VIDEO, "audio": Kind.VOICE, "document": Kind.DOCUMENT}
TYPE_OF_KIND = {kind: message_type for message_type, kind in KIND_OF_TYPE.items()}
MEDIA_TYPES = list(KIND_OF_TYPE)
# Types whose messages may carry a caption (as on WhatsApp, not audio).
CAPTIONED_TYPES = {"image", "video", "document"}


def _clean_kind(kind: object) -> str | None:
    if kind in (None, ""):
        return None
    if kind not in KIND_OF_TYPE:
        raise InvalidInput(f"kind must be one of {', '.join(MEDIA_TYPES)}.", field="kind")
    return KIND_OF_TYPE[kind]


def upload(*, app: DeveloperApp, file, kind: object = None, key=None) -> Media:
    """Store a file for the app (its bot account is the uploader), with the client API's checks and
    limits: 400 on `file` for content not of the declared kind, 413 too_large over its limit.

    With the request's `key`, it is checked again once the file is stored: an upload can take
    minutes, and a key revoked (or an app suspended) meanwhile leaves nothing behind."""
    media = broker_media.upload(uploader=app.bot, file=file, kind=_clean_kind(kind))
    if key is not None:
        # Here, not at the top: keys imports apps, which imports webhooks, which imports this module.
        from developer_api.services import keys

        try:
            keys.recheck(key)
        except BrokerError:
            broker_media.delete_media(media)
            raise
    return media


def readable_media(*, app: DeveloperApp, media_id: object, field: str = "media_id") -> Media:
    """Media the app may download or send: what its account uploaded, or what users sent it in its
    conversations. Anything else is "not found", as if it did not exist: people's profile photos
    too (apps are told people's names, never their photos)."""
    media_id = parse_id(media_id, field=field)
    try:
        return broker_media.readable_media(user=app.bot, media_id=media_id, photos=False)
    except NotFound:
        raise NotFound(f"This app has no media {media_id}.", field=field) from None


def sendable_media(*, app: DeveloperApp, message_type: str, media_id: object) -> Media:
    """The media of a `message_type` message: the app's, and stored as that type."""
    field = f"{message_type}.id"
    media = readable_media(app=app, media_id=media_id, field=field)
    stored_as = TYPE_OF_KIND[media.kind]
    if stored_as != message_type:
        raise InvalidInput(
            f"Media {media.pk} is {'an' if stored_as[0] in 'aeiou' else 'a'} {stored_as} ({media.mime_type}), "
            f"not {'an' if message_type[0] in 'aeiou' else 'a'} {message_type}: send it with type "
            f"\"{stored_as}\", or upload the file again with kind \"{message_type}\".",
            field=field,
        )
    return media


def media_payload(media: Media) -> dict:
    """An upload, as POST /developer/v1/media answers it."""
    return {
        "id": media.pk,
        "kind": TYPE_OF_KIND[media.kind],
        "mime_type": media.mime_type,
        "size": media.size,
        "sha256": media.sha256,
        "width": media.width,
        "height": media.height,
        "filename": media.name,
        "url": f"/developer/v1/media/{media.pk}",
    }


def media_object(media: Media, *, caption: str | None = None) -> dict:
    """The media of a message, as message statuses and webhook events carry it under its type:
    `{"type": "image", "image": {...}}`."""
    body = {"id": media.pk, "mime_type": media.mime_type, "sha256": media.sha256, "size": media.size}
    if media.name:  # documents: the file's name as its sender's device gave it
        body["filename"] = media.name
    if caption:
        body["caption"] = caption
    return body
