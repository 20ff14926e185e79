"""Profile photos (PATCH me) and group photos (PATCH conversations/{id}): who sees them, who may
download them, what happens to a photo replaced, and how others hear of a change."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from broker import events
from broker.services import accounts, conversations
from storage.models import Media, Message
from tests import media_samples as samples
from tests.factories import (
    api_user,
    direct_conversation,
    group_conversation,
    saved_contacts,
)
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/v1/me"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def upload(client, content: bytes, kind: str | None = None) -> dict:
    data = {"file": samples.uploaded(content, "upload.bin")}
    if kind:
        data["kind"] = kind
    response = client.post("/api/v1/media", data, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()


def red(size=(200, 200)) -> bytes:
    return samples.image_bytes("PNG", size=size, color=(200, 30, 30))


def blue(size=(200, 200)) -> bytes:
    return samples.image_bytes("JPEG", size=size, color=(30, 30, 200))


def conversation_url(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}"


def photo_of(media: dict) -> dict:
    return {"id": media["id"], "url": media["url"], "thumbnail_url": media["thumbnail_url"]}


def set_photo(client, media_id):
    return client.patch(ME, {"photo_media_id": media_id})


def member_user(conversation: dict, user_id: int) -> dict:
    return next(m["user"] for m in conversation["members"] if m["user"]["id"] == user_id)


def downloads(client, photo: dict) -> tuple[int, int]:
    return client.get(photo["url"]).status_code, client.get(photo["thumbnail_url"]).status_code


# --- A user's photo ---------------------------------------------------------------------------
def test_a_photo_set_with_patch_me_shows_wherever_the_person_is_shown():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    chat = direct_conversation(alice, bob)
    saved_contacts(bob, alice)
    media = upload(alice_client, red())

    response = set_photo(alice_client, media["id"])

    assert response.status_code == 200, response.json()
    photo = response.json()["photo"]
    assert photo == photo_of(media) and photo["thumbnail_url"] == f"/api/v1/media/{media['id']}/thumbnail"
    assert alice_client.get(ME).json()["photo"] == photo
    assert member_user(bob_client.get(conversation_url(chat.pk)).json(), alice.pk)["photo"] == photo
    assert bob_client.get("/api/v1/contacts").json()[0]["user"]["photo"] == photo
    # A direct conversation has no photo of its own: its clients show the other member's.
    assert bob_client.get(conversation_url(chat.pk)).json()["photo"] is None


def test_a_photo_is_downloadable_by_whoever_sees_the_name_and_by_nobody_else():
    alice, alice_client = api_user()
    in_chat, in_chat_client = api_user()
    in_group, in_group_client = api_user()
    saver, saver_client = api_user()
    stranger, stranger_client = api_user()
    direct_conversation(alice, in_chat)
    group_conversation(in_group, alice)
    saved_contacts(saver, alice)  # saved her number; no conversation
    photo = set_photo(alice_client, upload(alice_client, red())["id"]).json()["photo"]
    unsent = upload(alice_client, blue())  # another upload of hers, not her photo

    assert downloads(alice_client, photo) == (200, 200)
    for client in (in_chat_client, in_group_client, saver_client):
        assert downloads(client, photo) == (200, 200)
        assert client.get(unsent["url"]).status_code == 404  # her photo only, not her uploads
    assert downloads(stranger_client, photo) == (404, 404)
    assert stranger_client.get(photo["url"]).json()["error"]["field"] == "media"


def test_someone_elses_photo_cannot_be_forwarded_to_people_who_do_not_see_it():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    stranger, _ = api_user()
    direct_conversation(alice, bob)
    elsewhere = direct_conversation(bob, stranger)
    photo = set_photo(alice_client, upload(alice_client, red())["id"]).json()["photo"]

    response = bob_client.post(f"/api/v1/conversations/{elsewhere.pk}/messages",
                               {"client_id": "fwd", "media_id": photo["id"]})

    assert response.status_code == 404 and response.json()["error"]["field"] == "media_id"
    assert not Message.objects.filter(client_id="fwd").exists()


@pytest.mark.parametrize("bad", ["a document", "someone else's image", "no such media", "not a number", "zero"])
def test_a_photo_must_be_an_image_the_caller_uploaded(bad):
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    kept = set_photo(alice_client, upload(alice_client, red())["id"]).json()["photo"]
    media_id = {
        "a document": lambda: upload(alice_client, samples.PDF, "document")["id"],
        "someone else's image": lambda: upload(bob_client, blue())["id"],
        "no such media": lambda: 999999,
        "not a number": lambda: "abc",
        "zero": lambda: 0,
    }[bad]()

    response = alice_client.patch(ME, {"photo_media_id": media_id, "about": "not saved either"})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "photo_media_id"
    assert alice_client.get(ME).json()["photo"] == kept
    alice.refresh_from_db()
    assert alice.about == ""


def test_an_image_uploaded_as_a_document_is_refused_as_a_photo():
    _, client = api_user()
    document = upload(client, red(), "document")

    response = set_photo(client, document["id"])

    assert response.status_code == 400 and response.json()["error"]["field"] == "photo_media_id"
    assert "image" in response.json()["error"]["message"]


def test_replacing_and_removing_a_photo_releases_the_old_one():
    alice, client = api_user()
    first = upload(client, red())
    second = upload(client, blue())
    set_photo(client, first["id"])
    first_file = Media.objects.get(pk=first["id"]).file.name

    assert set_photo(client, second["id"]).json()["photo"] == photo_of(second)

    assert not Media.objects.filter(pk=first["id"]).exists()
    assert not default_storage.exists(first_file)
    assert client.get(first["url"]).status_code == 404

    response = set_photo(client, None)

    assert response.status_code == 200 and response.json()["photo"] is None
    assert not Media.objects.filter(pk=second["id"]).exists()
    alice.refresh_from_db()
    assert alice.photo_id is None


def test_a_replaced_photo_that_a_message_carries_stays_for_the_message():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    chat = direct_conversation(alice, bob)
    first = upload(alice_client, red())
    set_photo(alice_client, first["id"])
    alice_client.post(f"/api/v1/conversations/{chat.pk}/messages", {"client_id": "m", "media_id": first["id"]})

    set_photo(alice_client, None)

    assert Media.objects.filter(pk=first["id"]).exists()
    assert bob_client.get(first["url"]).status_code == 200


def test_setting_the_same_photo_again_changes_nothing():
    alice, client = api_user()
    media = upload(client, red())
    set_photo(client, media["id"])

    assert set_photo(client, media["id"]).json()["photo"] == photo_of(media)

    assert Media.objects.filter(pk=media["id"]).exists()


def test_leaving_the_photo_out_keeps_it():
    _, client = api_user()
    photo = set_photo(client, upload(client, red())["id"]).json()["photo"]

    assert client.patch(ME, {"about": "Busy"}).json()["photo"] == photo


# --- A group's photo --------------------------------------------------------------------------
def test_an_admin_sets_the_group_photo_and_the_members_see_it_and_are_told():
    alice, alice_client = api_user(display_name="Alice")
    bob, bob_client = api_user()
    _, stranger_client = api_user()
    group = group_conversation(alice, bob)
    media = upload(alice_client, red())

    response = alice_client.patch(conversation_url(group.pk), {"photo_media_id": media["id"]})

    assert response.status_code == 200, response.json()
    assert response.json()["photo"] == photo_of(media)
    seen = bob_client.get(conversation_url(group.pk)).json()
    assert seen["photo"] == photo_of(media)
    assert seen["last_message"]["text"] == "Alice changed the group photo"
    assert seen["last_message"]["event"] == {"action": "group_photo_changed", "by": alice.pk, "photo": media["id"]}
    assert downloads(bob_client, seen["photo"]) == (200, 200)
    assert downloads(stranger_client, seen["photo"]) == (404, 404)
    # Her own notice is read by her already, as any change she makes.
    assert alice_client.get(conversation_url(group.pk)).json()["unread_count"] == 0


def test_a_group_photo_is_no_longer_readable_by_someone_who_left():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    group = group_conversation(alice, bob)
    photo = alice_client.patch(conversation_url(group.pk),
                               {"photo_media_id": upload(alice_client, red())["id"]}).json()["photo"]
    assert downloads(bob_client, photo) == (200, 200)

    bob_client.delete(f"{conversation_url(group.pk)}/members/{bob.pk}")

    assert downloads(bob_client, photo) == (404, 404)
    # The group stays in his list, read-only, and shows no photo he could not load.
    assert bob_client.get(conversation_url(group.pk)).json()["left"] is True
    assert bob_client.get(conversation_url(group.pk)).json()["photo"] is None


def test_a_former_member_downloads_the_photos_of_those_the_left_group_lists_and_nobody_else_does():
    """A group one has left lists the people it had then, with their names and photos as they are
    now; the photos were 404 for the former member, whose page showed initials instead."""
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    carol, carol_client = api_user()
    stranger, stranger_client = api_user()
    group = group_conversation(alice, bob)  # Bob knows Alice through the group alone
    alice_photo = set_photo(alice_client, upload(alice_client, red())["id"]).json()["photo"]
    bob_client.delete(f"{conversation_url(group.pk)}/members/{bob.pk}")
    saved_contacts(alice, carol)
    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])  # after he went
    carol_photo = set_photo(carol_client, upload(carol_client, blue())["id"]).json()["photo"]

    listed = bob_client.get(conversation_url(group.pk)).json()
    assert listed["left"] is True and member_user(listed, alice.pk)["photo"] == alice_photo
    assert downloads(bob_client, alice_photo) == (200, 200)
    assert downloads(stranger_client, alice_photo) == (404, 404)
    assert downloads(bob_client, carol_photo) == (404, 404)  # not in the group as he left it: not listed
    # Her photo as it is now, as the listing shows it.
    new_photo = set_photo(alice_client, upload(alice_client, red(size=(120, 120)))["id"]).json()["photo"]
    assert member_user(bob_client.get(conversation_url(group.pk)).json(), alice.pk)["photo"] == new_photo
    assert downloads(bob_client, new_photo) == (200, 200)
    # Deleted from his list, the group shows him nobody.
    bob_client.delete(conversation_url(group.pk))
    assert downloads(bob_client, new_photo) == (404, 404)


def test_removing_the_group_photo_tells_the_members_and_releases_it():
    alice, alice_client = api_user(display_name="Alice")
    bob, bob_client = api_user()
    group = group_conversation(alice, bob)
    media = upload(alice_client, red())
    alice_client.patch(conversation_url(group.pk), {"photo_media_id": media["id"]})

    response = alice_client.patch(conversation_url(group.pk), {"photo_media_id": None})

    assert response.status_code == 200 and response.json()["photo"] is None
    assert response.json()["last_message"]["text"] == "Alice removed the group photo"
    assert not Media.objects.filter(pk=media["id"]).exists()
    again = alice_client.patch(conversation_url(group.pk), {"photo_media_id": None}).json()
    assert again["last_seq"] == response.json()["last_seq"]  # nothing to remove: no second notice


def test_only_a_groups_admins_change_its_photo():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    _, stranger_client = api_user()
    group = group_conversation(alice, bob)
    chat = direct_conversation(alice, bob)
    bobs = upload(bob_client, red())
    stranger_media = upload(stranger_client, red())

    member = bob_client.patch(conversation_url(group.pk), {"photo_media_id": bobs["id"]})
    outsider = stranger_client.patch(conversation_url(group.pk), {"photo_media_id": stranger_media["id"]})
    direct = bob_client.patch(conversation_url(chat.pk), {"photo_media_id": bobs["id"]})
    not_hers = alice_client.patch(conversation_url(group.pk), {"photo_media_id": bobs["id"]})
    missing = alice_client.patch(conversation_url(group.pk), {})

    assert (member.status_code, member.json()["error"]["field"]) == (403, "photo_media_id")
    assert (outsider.status_code, outsider.json()["error"]["field"]) == (404, "conversation")
    assert (direct.status_code, direct.json()["error"]["field"]) == (400, "conversation")
    assert (not_hers.status_code, not_hers.json()["error"]["field"]) == (400, "photo_media_id")
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "photo_media_id")
    group.refresh_from_db()
    assert group.photo_id is None and group.last_seq == 1  # only the notice of its making


# --- Cleanup ----------------------------------------------------------------------------------
def test_clean_media_keeps_photos_in_use_and_collects_what_nothing_carries():
    alice, alice_client = api_user()
    bob, _ = api_user()
    group = group_conversation(alice, bob)
    profile = upload(alice_client, red())
    group_photo = upload(alice_client, blue())
    unsent = upload(alice_client, samples.PDF, "document")
    set_photo(alice_client, profile["id"])
    alice_client.patch(conversation_url(group.pk), {"photo_media_id": group_photo["id"]})
    Media.objects.update(created_at=timezone.now() - timedelta(days=30))

    call_command("clean_media", "--grace", "0")

    assert set(Media.objects.values_list("pk", flat=True)) == {profile["id"], group_photo["id"]}
    for kept in Media.objects.all():
        assert default_storage.exists(kept.file.name) and default_storage.exists(kept.thumbnail.name)
    assert alice_client.get(profile["thumbnail_url"]).status_code == 200


# --- Live -------------------------------------------------------------------------------------
async def test_a_new_photo_reaches_whoever_shows_the_name_and_nobody_else(sockets):
    (alice, alice_token), (bob, bob_token), (stranger, stranger_token) = await people(3)
    await db(direct_conversation)(alice, bob)
    a, b, s = await sockets(alice_token), await sockets(bob_token), await sockets(stranger_token)
    media = await db(_upload_as)(alice, red())

    await db(accounts.update_profile)(user=alice, photo_media_id=media.pk)

    for socket in (a, b):
        updated = await socket.receive_type("user.updated")
        assert updated["user"]["photo"] == events.photo_payload(media.pk)
        assert updated["user"]["photo"]["thumbnail_url"] == f"/api/v1/media/{media.pk}/thumbnail"

    await db(accounts.update_profile)(user=alice, photo_media_id=None)

    assert (await b.receive_type("user.updated"))["user"]["photo"] is None
    assert all(event["type"] != "user.updated" for event in await s.drain())


async def test_a_group_photo_change_reaches_the_members_as_a_notice(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    b = await sockets(bob_token)
    media = await db(_upload_as)(alice, red())

    await db(conversations.set_group_photo)(actor=alice, conversation_id=group.pk, photo_media_id=media.pk)

    notice = (await b.receive_new(2))["message"]  # after the group's making (1), caught up at connect
    assert notice["kind"] == "system" and notice["event"]["action"] == "group_photo_changed"
    assert notice["event"]["photo"] == media.pk


def _upload_as(user, content: bytes) -> Media:
    from broker.services import media as media_service

    return media_service.upload(uploader=user, file=samples.uploaded(content, "photo.png"))


def test_a_message_with_the_same_bytes_as_a_photo_is_unaffected_by_the_photo_going():
    """Two uploads of one file share a blob: releasing the photo's upload leaves the other's file."""
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    chat = direct_conversation(alice, bob)
    photo = upload(alice_client, red())
    sent = upload(alice_client, red())
    alice_client.post(f"/api/v1/conversations/{chat.pk}/messages", {"client_id": "m", "media_id": sent["id"]})
    set_photo(alice_client, photo["id"])

    set_photo(alice_client, None)

    assert not Media.objects.filter(pk=photo["id"]).exists()
    download = bob_client.get(sent["url"])
    assert download.status_code == 200 and b"".join(download.streaming_content)
