"""The user's own profile, their address book, and blocking people."""

import pytest

from storage.models import Block, Contact, Message
from tests.factories import UserFactory, api_user, direct_conversation, group_conversation, user_with_token

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
CONTACTS = "/api/v1/contacts"


def blocks(user_id: int) -> str:
    return f"/api/v1/blocks/{user_id}"


def messages(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages"


# --- Profile ----------------------------------------------------------------------------------
def test_me_shows_the_logged_in_user():
    user, client = api_user(display_name="Grace", phone_number="+12125550142")

    response = client.get(ME)

    assert response.status_code == 200
    assert response.json() == {"id": user.pk, "phone_number": "+12125550142", "display_name": "Grace", "about": "",
                               "is_business": False, "photo": None}


def test_changing_display_name_and_about_is_kept():
    user, client = api_user()

    response = client.patch(ME, {"display_name": "  Grace Hopper ", "about": "Debugging"})

    assert response.status_code == 200
    assert response.json()["display_name"] == "Grace Hopper"
    assert client.get(ME).json()["about"] == "Debugging"
    user.refresh_from_db()
    assert (user.display_name, user.about) == ("Grace Hopper", "Debugging")


def test_about_can_be_cleared():
    user, client = api_user(about="Busy")

    assert client.patch(ME, {"about": ""}).json()["about"] == ""
    user.refresh_from_db()
    assert user.about == ""


def test_a_blank_display_name_is_refused_and_the_old_one_kept():
    user, client = api_user(display_name="Grace")

    response = client.patch(ME, {"display_name": "   "})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "display_name"
    user.refresh_from_db()
    assert user.display_name == "Grace"


def test_the_phone_number_cannot_be_changed_through_the_profile():
    user, client = api_user(phone_number="+12125550142")

    response = client.patch(ME, {"phone_number": "+12125550143", "about": "new"})

    assert response.status_code == 200
    assert response.json()["phone_number"] == "+12125550142"
    user.refresh_from_db()
    assert user.phone_number == "+12125550142"


# --- Contacts ---------------------------------------------------------------------------------
def test_adding_a_contact_by_phone_number_in_any_format():
    _, client = api_user()
    friend = UserFactory(phone_number="+12125550142", display_name="Linus")

    response = client.post(CONTACTS, {"phone_number": "+1 212 555 0142", "name": "Lin"})

    assert response.status_code == 201
    assert response.json()["name"] == "Lin"
    assert response.json()["user"] == {
        "id": friend.pk, "phone_number": "+12125550142", "display_name": "Linus", "about": "", "is_business": False,
        "photo": None,
    }


def test_adding_someone_i_chat_with_as_a_contact_by_user_id():
    owner, client = api_user()
    friend = UserFactory()
    direct_conversation(friend, owner)

    response = client.post(CONTACTS, {"user_id": friend.pk})

    assert response.status_code == 201
    assert response.json()["user"]["phone_number"] == friend.phone_number
    assert Contact.objects.get(owner=owner).contact == friend


def test_a_strangers_user_id_adds_no_contact_and_shows_nothing_of_them():
    owner, client = api_user()
    stranger = UserFactory()
    someone_else = UserFactory()
    group_conversation(stranger, someone_else)  # in a conversation, but not one of mine

    response = client.post(CONTACTS, {"user_id": stranger.pk})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "user_id"
    assert stranger.phone_number not in response.content.decode()
    assert not Contact.objects.filter(owner=owner).exists()


def test_adding_the_same_person_twice_keeps_one_contact_with_the_new_name():
    owner, client = api_user()
    friend = UserFactory()
    first = client.post(CONTACTS, {"phone_number": friend.phone_number, "name": "Old name"}).json()

    again = client.post(CONTACTS, {"user_id": friend.pk, "name": "New name"}).json()

    assert again["id"] == first["id"]
    assert list(Contact.objects.filter(owner=owner).values_list("name", flat=True)) == ["New name"]


def test_adding_a_contact_again_with_an_empty_name_clears_the_name():
    _, client = api_user()
    friend = UserFactory()
    first = client.post(CONTACTS, {"phone_number": friend.phone_number, "name": "Old name"}).json()

    again = client.post(CONTACTS, {"user_id": friend.pk, "name": ""})

    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    assert again.json()["name"] == ""
    assert [c["name"] for c in client.get(CONTACTS).json()] == [""]


def test_adding_a_contact_again_without_a_name_keeps_the_name():
    _, client = api_user()
    friend = UserFactory()
    client.post(CONTACTS, {"phone_number": friend.phone_number, "name": "Lin"})

    again = client.post(CONTACTS, {"user_id": friend.pk})

    assert again.status_code == 201
    assert again.json()["name"] == "Lin"
    assert [c["name"] for c in client.get(CONTACTS).json()] == ["Lin"]


def test_adding_a_number_nobody_uses_is_404_naming_the_field():
    _, client = api_user()

    response = client.post(CONTACTS, {"phone_number": "+12125550199"})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "phone_number"
    assert Contact.objects.count() == 0


def test_adding_an_invalid_phone_number_is_400_naming_the_field():
    _, client = api_user()

    response = client.post(CONTACTS, {"phone_number": "not a number"})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "phone_number"


def test_adding_yourself_as_a_contact_is_refused():
    owner, client = api_user()

    response = client.post(CONTACTS, {"user_id": owner.pk})

    assert response.status_code == 400
    assert Contact.objects.count() == 0


def test_the_contact_list_shows_only_my_contacts_sorted_by_name():
    owner, client = api_user()
    someone_else, _ = api_user()
    zoe, adam = UserFactory(display_name="Zoe"), UserFactory(display_name="Adam")
    client.post(CONTACTS, {"phone_number": zoe.phone_number})
    client.post(CONTACTS, {"phone_number": adam.phone_number})
    Contact.objects.create(owner=someone_else, contact=owner)

    response = client.get(CONTACTS)

    assert response.status_code == 200
    assert [c["user"]["display_name"] for c in response.json()] == ["Adam", "Zoe"]


def test_deleting_a_contact_removes_it():
    owner, client = api_user()
    contact_id = client.post(CONTACTS, {"phone_number": UserFactory().phone_number}).json()["id"]

    response = client.delete(f"{CONTACTS}/{contact_id}")

    assert response.status_code == 204
    assert client.get(CONTACTS).json() == []
    assert Contact.objects.filter(owner=owner).count() == 0


def test_nobody_can_delete_someone_elses_contact():
    _, owner_client = api_user()
    _, stranger_client = api_user()
    contact_id = owner_client.post(CONTACTS, {"phone_number": UserFactory().phone_number}).json()["id"]

    response = stranger_client.delete(f"{CONTACTS}/{contact_id}")

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "contact"  # the resource, as conversations and media name theirs
    assert Contact.objects.filter(pk=contact_id).exists()


# --- Blocks -----------------------------------------------------------------------------------
def test_blocking_and_unblocking_someone():
    me, client = api_user()
    pest = UserFactory()

    assert client.post(blocks(pest.pk)).status_code == 204
    assert Block.objects.filter(blocker=me, blocked=pest).exists()
    assert client.delete(blocks(pest.pk)).status_code == 204
    assert not Block.objects.exists()


def test_blocking_someone_twice_is_harmless():
    me, client = api_user()
    pest = UserFactory()

    client.post(blocks(pest.pk))
    assert client.post(blocks(pest.pk)).status_code == 204
    assert Block.objects.filter(blocker=me).count() == 1


def test_blocking_a_user_who_does_not_exist_is_404():
    _, client = api_user()

    response = client.post(blocks(999999))

    assert response.status_code == 404
    assert Block.objects.count() == 0


def test_blocking_yourself_is_refused():
    me, client = api_user()

    response = client.post(blocks(me.pk))

    assert response.status_code == 400
    assert Block.objects.count() == 0


def test_unblocking_someone_who_is_not_blocked_is_404():
    _, client = api_user()

    assert client.delete(blocks(UserFactory().pk)).status_code == 404


def test_a_blocked_person_cannot_message_the_blocker_and_nothing_is_stored():
    blocker, blocker_client = api_user()
    pest, pest_client = api_user()
    conversation = direct_conversation(blocker, pest)
    blocker_client.post(blocks(pest.pk))

    response = pest_client.post(messages(conversation.pk), {"client_id": "m1", "text": "hello?"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "blocked"
    assert Message.objects.count() == 0


def test_the_blocker_cannot_message_the_blocked_person_either():
    blocker, blocker_client = api_user()
    pest, _ = api_user()
    conversation = direct_conversation(blocker, pest)
    blocker_client.post(blocks(pest.pk))

    response = blocker_client.post(messages(conversation.pk), {"client_id": "m1", "text": "go away"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "blocked"
    assert Message.objects.count() == 0


def test_after_unblocking_messages_go_through_again():
    blocker, blocker_client = api_user()
    pest, pest_client = api_user()
    conversation = direct_conversation(blocker, pest)
    blocker_client.post(blocks(pest.pk))
    blocker_client.delete(blocks(pest.pk))

    response = pest_client.post(messages(conversation.pk), {"client_id": "m1", "text": "sorry"})

    assert response.status_code == 201
    assert Message.objects.count() == 1


def test_a_block_does_not_silence_a_shared_group():
    blocker, blocker_client = api_user()
    pest, pest_client = api_user()
    group = group_conversation(blocker, pest)
    blocker_client.post(blocks(pest.pk))

    response = pest_client.post(messages(group.pk), {"client_id": "m1", "text": "to everyone"})

    # Blocks are between two people; a group is everyone's, as in other messengers.
    assert response.status_code == 201
    assert Message.objects.filter(sender=pest, conversation=group).count() == 1


# --- Password and devices ---------------------------------------------------------------------
PASSWORD_URL = "/api/v1/me/password"
DEVICES = "/api/v1/me/devices"
NEW = "a brand new passphrase"


def test_a_new_password_logs_out_every_other_device_and_keeps_this_one():
    from broker.services import accounts
    from tests.factories import PASSWORD
    from tests.openapi import SchemaCheckedClient

    user, token = user_with_token()
    _, stolen_phone = accounts.login(phone_number=user.phone_number, password=PASSWORD, device_name="lost phone")
    me, thief = SchemaCheckedClient(token), SchemaCheckedClient(stolen_phone)

    wrong = me.post(PASSWORD_URL, {"current_password": "not it at all", "new_password": NEW})
    weak = me.post(PASSWORD_URL, {"current_password": PASSWORD, "new_password": "1234"})
    changed = me.post(PASSWORD_URL, {"current_password": PASSWORD, "new_password": NEW})

    assert [(r.status_code, r.json()["error"]["field"]) for r in (wrong, weak)] == [
        (400, "current_password"), (400, "new_password")]
    assert changed.status_code == 200 and changed.json() == {"devices_logged_out": 1}
    assert thief.get(ME).status_code == 401  # the lost phone is out
    assert me.get(ME).status_code == 200  # this device stays
    login = SchemaCheckedClient()
    assert login.post("/api/v1/auth/login", {"phone_number": user.phone_number, "password": PASSWORD}).status_code == 401
    assert login.post("/api/v1/auth/login", {"phone_number": user.phone_number, "password": NEW}).status_code == 200


def test_a_browser_changing_its_password_stays_logged_in_and_its_devices_are_out():
    from django.test import Client

    from tests.factories import PASSWORD
    from tests.openapi import SchemaCheckedClient

    user, token = user_with_token()
    browser, elsewhere = Client(), Client()
    browser.force_login(user)
    elsewhere.force_login(user)  # another browser, logged in with the old password

    changed = browser.post(PASSWORD_URL, {"current_password": PASSWORD, "new_password": NEW},
                           content_type="application/json")

    assert changed.status_code == 200 and changed.json() == {"devices_logged_out": 1}
    assert browser.get(ME).status_code == 200
    assert elsewhere.get(ME).status_code == 401  # its session ended with the old password
    assert SchemaCheckedClient(token).get(ME).status_code == 401


def test_a_user_sees_their_devices_and_logs_one_out_from_another():
    from broker.services import accounts
    from tests.factories import PASSWORD
    from tests.openapi import SchemaCheckedClient

    user, token = user_with_token()
    _, tablet = accounts.login(phone_number=user.phone_number, password=PASSWORD, device_name="tablet")
    _, other_people = api_user()
    me = SchemaCheckedClient(token)

    listed = me.get(DEVICES).json()
    tablet_id = next(d["id"] for d in listed if d["name"] == "tablet")
    refused = other_people.delete(f"{DEVICES}/{tablet_id}")  # not theirs
    logged_out = me.delete(f"{DEVICES}/{tablet_id}")

    assert sorted((d["name"], d["current"]) for d in listed) == [("tablet", False), ("test", True)]
    assert (refused.status_code, refused.json()["error"]["field"]) == (404, "device")
    assert logged_out.status_code == 204
    assert SchemaCheckedClient(tablet).get(ME).status_code == 401
    assert [d["name"] for d in me.get(DEVICES).json()] == ["test"]
