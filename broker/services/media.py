"""Media: photos, videos, voice messages and documents, uploaded first and then sent in a message.

The type of a file is decided from its content with `filetype` (magic-byte sniffing, pure Python,
no libmagic to install, maintained; it knows every container we accept: JPEG, PNG, WebP, MP4,
WebM, Ogg, M4A), never from its name or the client's Content-Type. Images are decoded and
re-encoded with Pillow, which drops EXIF (GPS included) and every other metadata block, after a
pixel-count check that refuses decompression bombs before decoding. Nothing is written to storage
until the file has passed every check; blobs are named by the SHA-256 of what is stored, so an
identical file is stored once and each upload only adds a row.
"""

import hashlib
import io
import logging
import re
import warnings
from contextlib import contextmanager
from datetime import timedelta

import filetype
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, ProtectedError, Q
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from broker.errors import InvalidInput, NotFound, TooLarge
from broker.services.people import parse_id
from storage import selectors
from storage.models import Conversation, Departure, Media, Membership, Message, User

logger = logging.getLogger(__name__)

Kind = Media.Kind

# Sniffed MIME type -> the kinds it may be uploaded as (any file may be a document).
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/apng": "PNG", "image/webp": "WEBP"}
# What Pillow may call each of them once open. Phone cameras write JPEGs that carry more pictures
# after the photo (MPO: an Ultra HDR gain map, a depth map, a stereo pair's other eye), which Pillow
# opens as "MPO"; they are JPEGs all the same, and only their first picture, the photo, is kept.
OPENS_AS = {"JPEG": {"JPEG", "MPO"}, "PNG": {"PNG"}, "WEBP": {"WEBP"}}
VIDEO_TYPES = {"video/mp4", "video/webm"}
# Ogg/Opus (Firefox, Android), WebM/Opus (Chromium's MediaRecorder), MP4/AAC (Safari).
VOICE_TYPES = {"audio/ogg", "audio/opus", "video/webm", "audio/webm", "audio/mp4", "video/mp4", "audio/aac"}
ACCEPTED = {
    Kind.IMAGE: "JPEG, PNG or WebP",
    Kind.VIDEO: "MP4 or WebM",
    Kind.VOICE: "Ogg/Opus, WebM/Opus or MP4/AAC",
    Kind.DOCUMENT: "any file",
}
SNIFF_BYTES = 8192
BLOB_LOCK_CLASS = 0x6D65  # "me": the first key of messenger's PostgreSQL advisory locks on blobs
CHUNK = 64 * 1024

# Pillow warns of an image over Image.MAX_IMAGE_PIXELS as it opens it; _reencode refuses such an
# image itself, so the warning is made the error it stands for, once for the process: a
# warnings.catch_warnings() around each decode would swap the process's filters from request
# threads at the same time, and one could put back what another had just changed.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def max_bytes(kind: str) -> int:
    return settings.MESSENGER["MEDIA_MAX_BYTES"][kind]


def largest_upload() -> int:
    return max(settings.MESSENGER["MEDIA_MAX_BYTES"].values())


def _human(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:g} MB" if mb >= 1 else f"{size} bytes"


def too_large(kind: str | None = None) -> TooLarge:
    if kind:
        limit = max_bytes(kind)
        return TooLarge(f"The file is larger than the {_human(limit)} limit for {kind} files ({limit} bytes).",
                        field="file")
    limit = largest_upload()
    return TooLarge(f"The upload is larger than the {_human(limit)} limit for any file ({limit} bytes).", field="file")


def _sniff(upload) -> str:
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    guess = filetype.guess(head) if head else None
    if guess is None:
        return "application/octet-stream"
    if guess.mime == "video/webm" and b"\x83\x81\x02" in head[:SNIFF_BYTES] and b"V_" not in head:
        return "audio/webm"  # a WebM whose only track is audio (track type 2): a voice recording
    return guess.mime


def _default_kind(mime: str) -> str:
    if mime in IMAGE_TYPES:
        return Kind.IMAGE
    if mime in {"audio/ogg", "audio/opus", "audio/webm", "audio/mp4", "audio/aac"}:
        return Kind.VOICE
    if mime in VIDEO_TYPES:
        return Kind.VIDEO
    return Kind.DOCUMENT


def _check_kind(kind: str, mime: str) -> None:
    allowed = {Kind.IMAGE: IMAGE_TYPES.keys(), Kind.VIDEO: VIDEO_TYPES | {"audio/webm"}, Kind.VOICE: VOICE_TYPES}
    if kind in allowed and mime not in allowed[kind]:
        raise InvalidInput(
            f"The file's content is {mime}, not {'an' if kind == Kind.IMAGE else 'a'} {kind} file ({ACCEPTED[kind]}).",
            field="file"
        )


def _clean_kind(kind: object) -> str | None:
    if kind in (None, ""):
        return None
    if kind not in Kind.values:
        raise InvalidInput(f"kind must be one of {', '.join(Kind.values)}.", field="kind")
    return kind


def _sha256_of(upload) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in iter(lambda: upload.read(CHUNK), b""):
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _reencode(upload, mime: str) -> tuple[bytes, bytes, int, int]:
    """(image bytes, JPEG thumbnail bytes, width, height): decoded and written anew, metadata gone."""
    limit = settings.MESSENGER["MEDIA_MAX_IMAGE_PIXELS"]
    # Pillow has a guard of its own (a warning above Image.MAX_IMAGE_PIXELS, an error above twice
    # that, read as it opens and decodes); left at its default of 89,478,485 pixels it refused
    # images a larger setting allows. It is set from the setting at each call, not once at import,
    # so it follows the setting as it is now; all requests in a process set the same value, so
    # concurrent uploads cannot see one another's.
    Image.MAX_IMAGE_PIXELS = limit
    upload.seek(0)
    try:
        image = Image.open(upload)
        if image.format not in OPENS_AS[IMAGE_TYPES[mime]]:
            raise InvalidInput(f"The file's content is not a valid {IMAGE_TYPES[mime]} image.", field="file")
        if image.width * image.height > limit:  # checked from the header, before decoding
            raise InvalidInput(f"The image has more than {limit} pixels.", field="file")
        image.load()
        image = ImageOps.exif_transpose(image)  # keep the orientation EXIF carried, then drop EXIF
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"The image has more than {limit} pixels.", field="file") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput("The image could not be decoded.", field="file") from exc

    fmt = IMAGE_TYPES[mime]
    if image.mode.startswith("I"):  # 16-bit greyscale: Pillow's convert() would clip it to 0 and 255
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    if "transparency" in image.info and fmt in ("PNG", "WEBP"):
        # A palette's (or a colour key's) transparency lives in `info`, which is cleared below.
        image = image.convert("RGBA")
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if fmt in ("PNG", "WEBP") and image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGBA")
    clean = image.copy()
    clean.info = {}  # EXIF, XMP, ICC, comments: none of it is written back
    out = io.BytesIO()
    options = {"JPEG": {"quality": 90, "optimize": True}, "PNG": {"optimize": True}, "WEBP": {"quality": 90}}[fmt]
    clean.save(out, format=fmt, **options)

    size = settings.MESSENGER["MEDIA_THUMBNAIL_SIZE"]
    thumb = clean.convert("RGBA") if clean.mode in ("P", "LA", "RGBA") else clean.convert("RGB")
    if thumb.mode == "RGBA":
        background = Image.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    thumb.thumbnail((size, size))
    thumb_out = io.BytesIO()
    thumb.save(thumb_out, format="JPEG", quality=80)
    return out.getvalue(), thumb_out.getvalue(), clean.width, clean.height


def blob_name(sha256: str) -> str:
    return f"media/{sha256[:2]}/{sha256}"


def thumbnail_name(sha256: str) -> str:
    return f"media/thumbnails/{sha256[:2]}/{sha256}.jpg"


@contextmanager
def blob_lock(sha256: str):
    """A transaction in which no other can add an upload of the content `sha256` names or judge its
    blobs unused: removal checks for uploads and deletes the blobs under it, and an upload adds its
    row and makes sure of its blobs under it, so a blob is never deleted under a committed row."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # a lock per content, released at commit
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [BLOB_LOCK_CLASS, _lock_key(sha256)])
        # SQLite: the transaction holds the database's write lock from its start (transaction_mode
        # IMMEDIATE, messenger/settings.py).
        yield


def _lock_key(sha256: str) -> int:
    return int(sha256[:8], 16) - 2**31  # PostgreSQL's int4


def _store(name: str, content) -> bool:
    """Write `content` under `name` unless a blob is there already (dedupe); True if written now.
    A failed write leaves nothing behind."""
    if default_storage.exists(name):
        return False
    try:
        saved = default_storage.save(name, content)
    except BaseException:
        _delete_quietly(name)
        raise
    if saved != name:  # another upload of the same content won the race: keep one copy
        _delete_quietly(saved)
        return False
    return True


def _delete_quietly(name: str) -> None:
    try:
        if name and default_storage.exists(name):
            default_storage.delete(name)
    except Exception:  # storage trouble must not hide the original error
        logger.exception("Could not delete media blob %s", name)


_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def document_name(raw: object) -> str:
    """A document's file name fit to show and save: its last path part, without control or
    direction-changing characters (which make "invoice\u202efdp.exe" read as "invoiceexe.pdf"),
    unpaired surrogates or surrounding spaces, at most 255 characters (the extension kept). Empty
    when nothing is left, and the document is then shown by its kind."""
    if not isinstance(raw, str):
        return ""
    name = _UNSHOWABLE.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = name.encode("utf-8", "replace").decode("utf-8").strip().strip(".")
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = stem[: 254 - len(extension)] + dot + extension if dot and len(extension) < 20 else name[:255]
    return name


def upload(*, uploader: User, file, kind: object = None) -> Media:
    """Validate an uploaded file (a Django UploadedFile, or any file object with `.size`) and store it."""
    if file is None:
        raise InvalidInput("Send the file in the multipart field \"file\".", field="file")
    declared = _clean_kind(kind)
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
    if size > (max_bytes(declared) if declared else largest_upload()):  # before reading any of it
        raise too_large(declared)
    if size == 0:
        raise InvalidInput("The file is empty.", field="file")

    mime = _sniff(file)
    kind = declared or _default_kind(mime)
    _check_kind(kind, mime)
    if size > max_bytes(kind):
        raise too_large(kind)

    width = height = None
    thumbnail_bytes = None
    if kind == Kind.IMAGE:
        data, thumbnail_bytes, width, height = _reencode(file, mime)
        mime = "image/png" if mime == "image/apng" else mime
        sha256 = hashlib.sha256(data).hexdigest()
        content = ContentFile(data)
        size = len(data)
    else:
        sha256 = _sha256_of(file)
        content = File(file)
        if mime == "audio/webm":
            mime = "audio/webm" if kind == Kind.VOICE else "video/webm"

    files = {blob_name(sha256): content}
    if thumbnail_bytes is not None:
        files[thumbnail_name(sha256)] = ContentFile(thumbnail_bytes)
    try:
        # New content is written before the lock is taken (the slow part, up to 100 MB, holds
        # nobody up); content stored already is only looked at.
        for name, data in files.items():
            _store(name, data)
        with blob_lock(sha256):
            media = Media.objects.create(
                uploader=uploader, kind=kind, mime_type=mime, size=size, sha256=sha256, file=blob_name(sha256),
                width=width, height=height, duration=None,
                thumbnail=thumbnail_name(sha256) if thumbnail_bytes is not None else "",
                name=document_name(getattr(file, "name", "")) if kind == Kind.DOCUMENT else "",
            )
            # The last other upload of these bytes may have been removed, and the blob with it,
            # since it was looked at; with the row in place no removal can take it any more.
            for name, data in files.items():
                _store(name, data)
    except BaseException:
        try:
            _remove_blobs_if_unused(sha256)
        except Exception:  # the database may be what failed: the files are left to clean_media
            logger.exception("Could not remove the blobs of a failed upload, %s", sha256)
        raise
    return media


# --- Reading ----------------------------------------------------------------------------------
def readable_media(*, user: User, media_id: object, field: str = "media", photos: bool = True) -> Media:
    """The media if `user` uploaded it or can see a message carrying it (in a conversation they are
    in, or in a group they have left, up to the notice of their going), or (with `photos`) it is the
    photo of someone whose profile they see or of a group they are in; else 404 naming `field`, the
    request's name for the id."""
    media_id = parse_id(media_id, field=field)
    # History before a member joined is hidden from them, and so is its media.
    member = Membership.objects.filter(
        user=user, conversation_id=OuterRef("conversation_id"), joined_after_seq__lt=OuterRef("seq")
    )
    former = Departure.objects.filter(user=user, conversation_id=OuterRef("conversation_id"),
                                      joined_after_seq__lt=OuterRef("seq"), through_seq__gte=OuterRef("seq"))
    in_conversation = Message.objects.filter(media_id=OuterRef("pk")).filter(Exists(member) | Exists(former))
    readable = Q(uploader=user) | Exists(in_conversation)
    if photos:
        # Seen wherever the person's name is (selectors.profiles_seen_by), or the group's title.
        readable |= Exists(selectors.profiles_seen_by(user_id=user.pk).filter(photo_id=OuterRef("pk")))
        readable |= Exists(Conversation.objects.filter(photo_id=OuterRef("pk"), memberships__user_id=user.pk))
    media = Media.objects.filter(pk=media_id).filter(readable).first()
    if media is None:
        raise NotFound(f"No media {media_id}.", field=field)
    return media


def usable_media(*, sender: User, media_id: object) -> Media:
    """Media the sender may attach to a message: their own upload, or media they can already see in
    a conversation (forwarding). Someone else's photo is not sent on: seen as a photo, it would
    reach people who do not see its owner's profile (or are not in its group)."""
    return readable_media(user=sender, media_id=media_id, field="media_id", photos=False)


def own_image(*, user: User, media_id: object, field: str) -> Media:
    """An image `user` uploaded, to become their photo or a group's (InvalidInput naming `field`
    otherwise: someone else's upload is answered as an id nobody has). Locked, in the caller's
    transaction: clean_media cannot delete it before the photo that uses it is stored."""
    media_id = parse_id(media_id, field=field)
    media = Media.objects.select_for_update().filter(pk=media_id, uploader=user).first()
    if media is None:
        raise InvalidInput(f"Media {media_id} is none of your uploads: upload the photo with POST media first.",
                           field=field)
    if media.kind != Kind.IMAGE:
        raise InvalidInput(f"Media {media_id} is {'an' if media.kind[0] in 'aeiou' else 'a'} {media.kind}, not an "
                           f"image: a photo is a JPEG, PNG or WebP uploaded as an image.", field=field)
    return media


# --- Cleanup ----------------------------------------------------------------------------------
def delete_media(media: Media) -> None:
    """Delete the row and, after commit, its blobs if no other upload shares them."""
    sha256 = media.sha256
    media.delete()
    transaction.on_commit(lambda: _remove_blobs_if_unused(sha256))


def _remove_blobs_if_unused(sha256: str) -> None:
    # The names come from the content's hash, not from the deleted row: an image and a document
    # upload of the same bytes share the blob, but only the image's row names the thumbnail, and
    # the document's may be the last to go.
    with blob_lock(sha256):
        if not Media.objects.filter(sha256=sha256).exists():
            _delete_quietly(blob_name(sha256))
            _delete_quietly(thumbnail_name(sha256))


def _in_use():
    """A condition on media: a message carries it, or it is someone's photo or a group's."""
    return (Exists(Message.objects.filter(media_id=OuterRef("pk")))
            | Exists(User.objects.filter(photo_id=OuterRef("pk")))
            | Exists(Conversation.objects.filter(photo_id=OuterRef("pk"))))


def media_unreferenced(media_id: int) -> bool:
    return not Media.objects.filter(pk=media_id).filter(_in_use()).exists()


def release_media(media_id: int) -> None:
    """A message carrying `media_id` was deleted, or a photo replaced: the media goes too if nothing
    carries it now (no message, nobody's photo, no group's)."""
    if media_unreferenced(media_id):
        media = Media.objects.filter(pk=media_id).first()
        if media is not None:
            delete_media(media)


def release_photo_after_commit(media_id: int | None) -> None:
    """A photo was replaced or removed: once that commits, its media goes unless something else
    carries it. Apart from the change, so that the same upload becoming a photo or a message
    meanwhile cannot undo it (PROTECT refuses the deletion: the media is kept); should the release
    fail otherwise, `manage.py clean_media` collects what nothing carries."""
    if media_id is None:
        return

    def release():
        try:
            with transaction.atomic():
                release_media(media_id)
        except (IntegrityError, ProtectedError):
            logger.warning("media %s of a replaced photo is carried by something set meanwhile; kept", media_id)

    transaction.on_commit(release)


def message_deleted(sender, instance: Message, **kwargs) -> None:
    """post_delete of a Message (connected in BrokerConfig.ready)."""
    if instance.media_id is not None:
        release_media(instance.media_id)


def collect_unused(*, older_than: timedelta | None = None, now=None) -> int:
    """Delete uploads nothing carries (no message, nobody's photo, no group's), made longer ago than
    the upload grace period; their blobs go when no other upload shares them. Returns how many
    uploads were deleted."""
    if older_than is None:
        older_than = timedelta(seconds=settings.MESSENGER["MEDIA_UPLOAD_GRACE"])
    cutoff = (now or timezone.now()) - older_than
    unused = Media.objects.filter(created_at__lt=cutoff).exclude(_in_use())
    count = 0
    for media in unused.iterator():
        try:
            with transaction.atomic():
                delete_media(media)
        except (IntegrityError, ProtectedError):
            # Sent, or made someone's photo, since it was found unused (PROTECT): it is in use.
            continue
        count += 1
    return count


SHA256 = re.compile(r"[0-9a-f]{64}")


def _stored_names(folder: str):
    """Every file under `folder`, through the storage API (listdir), so any backend will do."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for name in folders:
        yield from _stored_names(f"{folder}/{name}")


def _content_named(name: str) -> str | None:
    """The SHA-256 whose blob or thumbnail `name` is, if it is one."""
    sha256 = name.rsplit("/", 1)[-1].removesuffix(".jpg")
    if SHA256.fullmatch(sha256) and name in (blob_name(sha256), thumbnail_name(sha256)):
        return sha256
    return None


def sweep_unused_files(*, older_than: timedelta | None = None, now=None) -> int:
    """Delete the files under media/ that no upload uses, last written longer ago than the upload
    grace period: left by a process that died between writing a blob and adding its row, by
    removals that failed, or by versions that removed less. Returns how many were deleted.

    A younger file may be a blob whose upload has not added its row yet, and is left alone; one
    whose age the storage cannot tell is kept too. Blobs are judged under `blob_lock`, so an upload
    of the same bytes is either seen or writes the blob again."""
    if older_than is None:
        older_than = timedelta(seconds=settings.MESSENGER["MEDIA_UPLOAD_GRACE"])
    cutoff = (now or timezone.now()) - older_than
    count = 0
    for name in _stored_names("media"):
        try:
            if default_storage.get_modified_time(name) >= cutoff:
                continue
        except (NotImplementedError, OSError):
            continue
        sha256 = _content_named(name)
        if sha256 is None:  # not a name uploads use (a storage's renamed copy, say): nothing reads it
            if not Media.objects.filter(Q(file=name) | Q(thumbnail=name)).exists():
                _delete_quietly(name)
                count += 1
            continue
        if Media.objects.filter(sha256=sha256).exists():  # the usual case, answered without the lock
            continue
        with blob_lock(sha256):
            if not Media.objects.filter(sha256=sha256).exists():
                _delete_quietly(name)
                count += 1
    return count
