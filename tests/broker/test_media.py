"""broker.services.media: sniffing, limits, re-encoding, dedupe, who may read, cleanup."""

import hashlib
import io
import os
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from broker.errors import InvalidInput, NotFound, TooLarge
from broker.services import media as media_service
from broker.services.send import send_message
from storage.models import Media, Message
from tests import media_samples as samples
from tests.factories import UserFactory, direct_conversation, group_conversation, saved_contacts, sent_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(user, content, kind=None, name="file.bin", content_type="application/octet-stream"):
    return media_service.upload(uploader=user, file=samples.uploaded(content, name, content_type), kind=kind)


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_images_are_sniffed_reencoded_measured_and_thumbnailed(fmt, mime):
    user = UserFactory()
    media = upload(user, samples.image_bytes(fmt, size=(800, 600)), name="x.txt", content_type="text/plain")
    assert (media.kind, media.mime_type, media.width, media.height) == ("image", mime, 800, 600)
    with default_storage.open(media.file.name) as f:
        assert Image.open(f).format == fmt
    with default_storage.open(media.thumbnail.name) as f:
        thumb = Image.open(f)
        assert thumb.format == "JPEG" and max(thumb.size) == 320
    assert media.size == default_storage.size(media.file.name)


def test_exif_and_gps_are_stripped():
    original = samples.image_bytes("JPEG", exif=True)
    assert b"SpyCam" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(samples.GPS_IFD)
    media = upload(UserFactory(), original)
    with default_storage.open(media.file.name) as f:
        stored = f.read()
    assert b"SpyCam" not in stored
    image = Image.open(io.BytesIO(stored))
    assert not image.getexif() and "exif" not in image.info


def test_a_phone_photo_with_extra_pictures_is_accepted_as_the_photo_alone():
    """Android's Ultra HDR photos (and depth or stereo shots) are JPEGs with more pictures after the
    first (MPO); what is kept and shown is the photo, as a plain JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(
        out, format="MPO", save_all=True, append_images=[Image.new("RGB", (32, 24), (0, 0, 255))])  # a gain map
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"

    media = upload(UserFactory(), out.getvalue(), kind="image", name="PXL_0001.jpg", content_type="image/jpeg")

    assert (media.kind, media.mime_type, media.width, media.height) == ("image", "image/jpeg", 64, 48)
    stored = stored_image(media)
    assert stored.format == "JPEG" and getattr(stored, "n_frames", 1) == 1
    red, green, blue = stored.getpixel((32, 24))
    assert red > 150 and blue < 80
    with default_storage.open(media.thumbnail.name) as f:
        assert Image.open(f).size == (64, 48)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def stored_image(media) -> Image.Image:
    with default_storage.open(media.file.name) as f:
        image = Image.open(io.BytesIO(f.read()))
    image.load()
    return image


def test_a_transparent_palette_png_stays_transparent():
    """What PNG optimisers make of logos and stickers: a palette whose transparency is a chunk of
    its own, which the re-encoding must not drop with the metadata."""
    logo = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    logo.paste((200, 30, 30, 255), (10, 10, 30, 30))
    original = png(logo.quantize())
    assert Image.open(io.BytesIO(original)).mode == "P"

    stored = stored_image(upload(UserFactory(), original)).convert("RGBA")

    assert stored.getpixel((0, 0))[3] == 0 and stored.getpixel((20, 20)) == (200, 30, 30, 255)


def test_a_16_bit_greyscale_png_keeps_its_shades():
    ramp = Image.new("I;16", (256, 1))
    ramp.putdata([level * 257 for level in range(256)])

    stored = stored_image(upload(UserFactory(), png(ramp))).convert("L")

    assert [stored.getpixel((x, 0)) for x in (0, 64, 128, 255)] == [0, 64, 128, 255]


def test_a_black_and_white_png_stays_black_and_white():
    """Scans and screenshots of text are often one bit a pixel; stored as colour with an alpha
    channel they grew thirty-two times over."""
    scan = Image.new("1", (400, 400), 1)
    scan.paste(0, (50, 50, 350, 120))
    original = png(scan)

    stored = stored_image(upload(UserFactory(), original))

    assert stored.mode == "1"
    assert stored.getpixel((0, 0)) == 255 and stored.getpixel((100, 100)) == 0


@pytest.mark.parametrize("content,kind,mime", [
    (samples.MP4, None, "video/mp4"),
    (samples.WEBM, None, "video/webm"),
    (samples.OGG_OPUS, None, "audio/ogg"),
    (samples.M4A, None, "audio/mp4"),
    (samples.OGG_OPUS, "voice", "audio/ogg"),
    (samples.WEBM, "voice", "video/webm"),
    (samples.MP4, "voice", "video/mp4"),
    (samples.PDF, None, "application/pdf"),
    (b"just some text", None, "application/octet-stream"),
    (samples.MP4, "document", "video/mp4"),
])
def test_each_kind_is_decided_from_content(content, kind, mime):
    media = upload(UserFactory(), content, kind=kind, name="photo.jpg", content_type="image/jpeg")
    expected_kind = kind or {"video/mp4": "video", "video/webm": "video", "audio/ogg": "voice",
                             "audio/mp4": "voice"}.get(mime, "document")
    assert (media.kind, media.mime_type, media.size) == (expected_kind, mime, len(content))
    assert media.width is None and media.duration is None and not media.thumbnail
    with default_storage.open(media.file.name) as f:
        assert f.read() == content


@pytest.mark.parametrize("content,kind", [
    (samples.PDF, "image"),
    (samples.MP4, "image"),
    (samples.image_bytes(), "video"),
    (samples.PDF, "voice"),
    (samples.OGG_OPUS, "video"),
])
def test_content_that_is_not_the_declared_kind_is_refused_and_nothing_is_stored(content, kind, media_root):
    with pytest.raises(InvalidInput) as info:
        upload(UserFactory(), content, kind=kind, name="a.jpg", content_type="image/jpeg")
    assert info.value.field == "file" and f"not {'an' if kind == 'image' else 'a'} {kind} file" in info.value.message
    assert stored_files(media_root) == [] and not Media.objects.exists()


def test_a_truncated_image_is_refused(media_root):
    broken = samples.image_bytes("PNG", size=(300, 300))[:200]
    with pytest.raises(InvalidInput, match="decoded"):
        upload(UserFactory(), broken, kind="image")
    assert stored_files(media_root) == []


def test_an_unknown_kind_is_refused():
    with pytest.raises(InvalidInput) as info:
        upload(UserFactory(), samples.PDF, kind="sticker")
    assert info.value.field == "kind"


def test_an_empty_file_is_refused():
    with pytest.raises(InvalidInput, match="empty"):
        upload(UserFactory(), b"")


def test_oversize_files_are_refused_naming_the_limit(settings, media_root):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 1000, "video": 2000, "voice": 1500, "document": 5000}}
    with pytest.raises(TooLarge) as info:
        upload(UserFactory(), samples.MP4 + b"\x00" * 2000)  # sniffed as video: over 2000
    assert info.value.code == "too_large" and "2000 bytes" in info.value.message and "video" in info.value.message
    with pytest.raises(TooLarge, match="1500 bytes"):
        upload(UserFactory(), samples.OGG_OPUS, kind="voice")  # declared: refused before reading
    with pytest.raises(TooLarge, match="5000 bytes"):
        upload(UserFactory(), b"x" * 5001)
    assert stored_files(media_root) == [] and not Media.objects.exists()


@pytest.fixture
def pillow_limit(monkeypatch):
    """Uploads set Pillow's module-wide pixel limit from the setting; put it back after a test that
    changes the setting, for the test code's own Image.open calls."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def test_decompression_bombs_are_refused_before_decoding(settings, media_root, pillow_limit):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_IMAGE_PIXELS": 10_000}
    with pytest.raises(InvalidInput, match="10000 pixels"):
        upload(UserFactory(), samples.image_bytes("PNG", size=(200, 200)))
    assert stored_files(media_root) == []


def test_a_pixel_limit_above_pillows_default_is_honoured(settings, pillow_limit):
    """Pillow refuses more than 89,478,485 pixels by default; an operator who allows 100 million gets
    100 million."""
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_IMAGE_PIXELS": 100_000_000}
    out = io.BytesIO()
    Image.new("L", (10_000, 9_000)).save(out, format="PNG")  # 90 megapixels in 87 KB

    media = upload(UserFactory(), out.getvalue(), kind="image")

    assert (media.width, media.height) == (10_000, 9_000)
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_IMAGE_PIXELS": 80_000_000}
    with pytest.raises(InvalidInput, match="more than 80000000 pixels"):
        upload(UserFactory(), out.getvalue(), kind="image")


def test_pillows_own_bomb_guard_follows_the_setting(settings, monkeypatch, pillow_limit):
    """Whatever Pillow's limit was (another library in the process may set it), the setting decides."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_IMAGE_PIXELS": 100_000}
    assert upload(UserFactory(), samples.image_bytes("PNG", size=(300, 300))).width == 300
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_IMAGE_PIXELS": 1_000}
    with pytest.raises(InvalidInput, match="more than 1000 pixels"):
        upload(UserFactory(), samples.image_bytes("PNG", size=(100, 100)))


def test_identical_files_are_stored_once(media_root):
    a, b = UserFactory(), UserFactory()
    first = upload(a, samples.image_bytes("PNG"))
    second = upload(b, samples.image_bytes("PNG"))
    upload(b, samples.PDF)
    assert first.pk != second.pk and first.sha256 == second.sha256
    assert first.file.name == second.file.name and first.thumbnail.name == second.thumbnail.name
    assert len(stored_files(media_root)) == 3  # one image, its thumbnail, the PDF


def test_a_failed_row_insert_leaves_no_blob(monkeypatch, media_root):
    def fail(**kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(Media.objects, "create", fail)
    with pytest.raises(RuntimeError):
        upload(UserFactory(), samples.image_bytes())
    assert stored_files(media_root) == []


def test_only_the_uploader_and_members_where_it_was_sent_may_read():
    alice, bob, carol, dave = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    media = upload(alice, samples.PDF)
    assert media_service.readable_media(user=alice, media_id=media.pk) == media
    with pytest.raises(NotFound):
        media_service.readable_media(user=bob, media_id=media.pk)
    group = group_conversation(alice, bob, carol)
    send_message(sender=alice, conversation_id=group.pk, client_id="m1", media_id=media.pk)
    assert media_service.readable_media(user=bob, media_id=media.pk) == media
    with pytest.raises(NotFound):
        media_service.readable_media(user=dave, media_id=media.pk)
    # Someone added later does not see the history before they joined, nor its media.
    from broker.services.conversations import add_members

    saved_contacts(alice, dave)
    add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])
    with pytest.raises(NotFound):
        media_service.readable_media(user=dave, media_id=media.pk)


def test_a_message_can_carry_media_with_or_without_a_caption():
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    media = upload(alice, samples.image_bytes())
    bare, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="a", media_id=media.pk)
    captioned, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="b", text="look",
                                media_id=media.pk)
    assert (bare.text, bare.media_id) == ("", media.pk) and (captioned.text, captioned.media_id) == ("look", media.pk)
    with pytest.raises(InvalidInput, match="empty"):
        send_message(sender=alice, conversation_id=conversation.pk, client_id="c", text="  ")


def test_someone_elses_unseen_media_cannot_be_sent():
    alice, bob, mallory = UserFactory(), UserFactory(), UserFactory()
    media = upload(alice, samples.PDF)
    conversation = direct_conversation(mallory, bob)
    with pytest.raises(NotFound) as info:
        send_message(sender=mallory, conversation_id=conversation.pk, client_id="steal", media_id=media.pk)
    assert info.value.field == "media_id"
    assert not Message.objects.filter(client_id="steal").exists()


def test_media_deleted_with_its_last_message_is_removed_from_storage(media_root):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    media = upload(alice, samples.image_bytes())
    twin = upload(bob, samples.image_bytes())  # same blob, another upload
    first, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="1", media_id=media.pk)
    second, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="2", media_id=media.pk)
    first.delete()
    assert Media.objects.filter(pk=media.pk).exists()
    second.delete()
    assert not Media.objects.filter(pk=media.pk).exists()
    assert len(stored_files(media_root)) == 2  # the twin still holds the blob and thumbnail
    twin_message, _ = send_message(sender=bob, conversation_id=conversation.pk, client_id="3", media_id=twin.pk)
    conversation.delete()  # messages go by cascade
    assert not Media.objects.exists()
    assert stored_files(media_root) == []


def test_a_thumbnail_goes_with_the_last_upload_of_its_bytes_whatever_its_kind(media_root):
    """The same photo uploaded as an image (thumbnailed) and as a document (not) shares one blob;
    when the image goes first, the document's removal takes the thumbnail too."""
    alice = UserFactory()
    photo = upload(alice, samples.image_bytes())
    with default_storage.open(photo.file.name) as f:
        stored = f.read()
    document = upload(alice, stored, kind="document")
    assert document.sha256 == photo.sha256 and not document.thumbnail
    assert len(stored_files(media_root)) == 2  # the blob and the photo's thumbnail

    media_service.delete_media(photo)
    assert len(stored_files(media_root)) == 2  # the document still uses the blob
    media_service.delete_media(document)

    assert stored_files(media_root) == []


def test_unsent_uploads_are_collected_after_the_grace_period(settings, media_root):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    old_unsent = upload(alice, samples.PDF)
    Media.objects.filter(pk=old_unsent.pk).update(created_at=timezone.now() - timedelta(days=2))
    sent = upload(alice, samples.image_bytes())
    Media.objects.filter(pk=sent.pk).update(created_at=timezone.now() - timedelta(days=2))
    send_message(sender=alice, conversation_id=conversation.pk, client_id="x", media_id=sent.pk)
    fresh = upload(alice, samples.MP4)

    out = io.StringIO()
    call_command("clean_media", stdout=out)
    assert "1" in out.getvalue()
    assert set(Media.objects.values_list("pk", flat=True)) == {sent.pk, fresh.pk}
    assert not default_storage.exists(old_unsent.file.name)
    assert default_storage.exists(sent.file.name) and default_storage.exists(fresh.file.name)
    assert media_service.collect_unused(older_than=timedelta(0)) == 1  # the fresh one, with no grace
    assert not default_storage.exists(fresh.file.name)


def test_an_upload_sharing_a_blob_that_cleanup_is_removing_still_has_its_file(monkeypatch, media_root):
    """A repeat upload finds the blob already stored and writes nothing; if cleanup removes the last
    older upload of the same bytes at that moment and judges the blob unused, the new upload must
    still end up with its file."""
    alice, bob = UserFactory(), UserFactory()
    old = upload(alice, samples.PDF)
    Media.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    real_store = media_service._store
    cleaned = []

    def store_then_clean(name, content):
        written = real_store(name, content)
        if not cleaned:  # right after the upload found the blob there, before its row exists
            cleaned.append(media_service.collect_unused())
        return written

    monkeypatch.setattr(media_service, "_store", store_then_clean)
    new = upload(bob, samples.PDF)
    monkeypatch.undo()

    assert cleaned == [1] and not Media.objects.filter(pk=old.pk).exists()
    assert Media.objects.filter(pk=new.pk).exists()
    with default_storage.open(new.file.name) as f:
        assert f.read() == samples.PDF


def age(root, *names, days=2):
    then = time.time() - days * 86400
    for name in names:
        os.utime(root / name, (then, then))


def test_clean_media_removes_old_files_no_upload_uses(media_root):
    """Files an upload never got its row for (the process died), or that older versions left (the
    thumbnail of bytes last uploaded as a document): disk space an operator would otherwise lose."""
    used = upload(UserFactory(), samples.image_bytes())
    crashed = media_service.blob_name("ab" * 32)
    stray_thumbnail = media_service.thumbnail_name("cd" * 32)
    renamed = f"{crashed}_x1Y2z3A"  # a storage's copy under another name
    in_progress = media_service.blob_name("ef" * 32)  # an upload that has not added its row yet
    for name in (crashed, stray_thumbnail, renamed, in_progress):
        default_storage.save(name, ContentFile(b"bytes"))
    age(media_root, used.file.name, used.thumbnail.name, crashed, stray_thumbnail, renamed)

    out = io.StringIO()
    call_command("clean_media", stdout=out)

    assert "Removed 0 unsent upload(s) and 3 file(s)" in out.getvalue()
    assert stored_files(media_root) == sorted([used.file.name, used.thumbnail.name, in_progress])
    assert media_service.sweep_unused_files(older_than=timedelta(0)) == 1  # no grace: the young one too


def test_clean_media_refuses_a_negative_grace_and_deletes_nothing(media_root):
    from django.core.management.base import CommandError

    fresh = upload(UserFactory(), samples.PDF)  # just uploaded, about to be sent

    with pytest.raises(CommandError, match="--grace -60"):
        call_command("clean_media", "--grace", "-60", stdout=io.StringIO())

    assert Media.objects.filter(pk=fresh.pk).exists() and fresh.file.name in stored_files(media_root)


def test_an_upload_of_a_blob_the_sweep_is_removing_still_has_its_file(monkeypatch, media_root):
    name = media_service.blob_name(hashlib.sha256(samples.PDF).hexdigest())
    default_storage.save(name, ContentFile(samples.PDF))  # left behind, no upload uses it
    age(media_root, name)
    real_store = media_service._store
    swept = []

    def store_then_sweep(name, content):
        written = real_store(name, content)
        if not swept:  # the upload found the blob there and wrote nothing; its row is not there yet
            swept.append(media_service.sweep_unused_files())
        return written

    monkeypatch.setattr(media_service, "_store", store_then_sweep)
    media = upload(UserFactory(), samples.PDF)
    monkeypatch.undo()

    assert swept == [1]
    with default_storage.open(media.file.name) as f:
        assert f.read() == samples.PDF


def test_a_blob_uploaded_again_while_the_sweep_judges_it_is_kept(monkeypatch, media_root):
    name = media_service.blob_name(hashlib.sha256(samples.PDF).hexdigest())
    default_storage.save(name, ContentFile(samples.PDF))
    age(media_root, name)
    real_lock = media_service.blob_lock
    uploads = []

    @contextmanager
    def upload_first(sha256):
        if not uploads:  # the sweep found no upload of it; one is added before the sweep locks
            uploads.append(None)
            uploads.append(upload(UserFactory(), samples.PDF))
        with real_lock(sha256):
            yield

    monkeypatch.setattr(media_service, "blob_lock", upload_first)
    assert media_service.sweep_unused_files() == 0
    monkeypatch.undo()

    with default_storage.open(uploads[-1].file.name) as f:
        assert f.read() == samples.PDF


def test_the_message_payload_carries_the_media():
    from broker.events import message_payload

    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    media = upload(alice, samples.image_bytes(size=(10, 20)))
    message, _ = send_message(sender=alice, conversation_id=conversation.pk, client_id="p", media_id=media.pk)
    payload = message_payload(Message.objects.get(pk=message.pk))
    assert payload["media"] == {
        "id": media.pk, "kind": "image", "mime_type": "image/jpeg", "size": media.size, "sha256": media.sha256,
        "width": 10, "height": 20, "duration": None, "name": "", "url": f"/api/v1/media/{media.pk}",
        "thumbnail_url": f"/api/v1/media/{media.pk}/thumbnail",
    }
    assert message_payload(sent_message(alice, conversation))["media"] is None


@pytest.mark.parametrize("raw, name", [
    ("report.pdf", "report.pdf"),
    ("C:\\Users\\pat\\report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # no right-to-left override to make it read .pdf
    ("tab\tand\x00nul.txt", "tabandnul.txt"),
    ("  .hidden  ", "hidden"),
    ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ("\ud800broken.txt", "?broken.txt"),
    (None, ""),
])
def test_a_documents_name_is_cleaned_to_show_and_save(raw, name):
    assert media_service.document_name(raw) == name


def test_only_documents_keep_their_name(media_root):
    alice = UserFactory()

    photo = upload(alice, samples.image_bytes(), name="IMG_home.jpg", content_type="image/jpeg")
    document = upload(alice, samples.PDF, kind="document", name="lease.pdf")

    assert (photo.name, document.name) == ("", "lease.pdf")
