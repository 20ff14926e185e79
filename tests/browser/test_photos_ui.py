"""Profile and group photos in the browser: set in the profile panel (or a group's info panel by
its admin), shown to the others at once wherever the person (or group) is, as the photo's thumbnail
under the content security policy; removed, the initials come back."""

import pytest
from playwright.sync_api import expect

from tests import media_samples as samples
from tests.browser.test_chat_ui import _patience, csp_violations, group_by_api, open_chat, send, start_chat  # noqa: F401

pytestmark = pytest.mark.browser


def photo_file(color=(30, 120, 200)) -> dict:
    return {"name": "me.png", "mimeType": "image/png", "buffer": samples.image_bytes("PNG", size=(400, 300), color=color)}


def shows_photo(avatar, src: str | None = None) -> None:
    """`avatar` shows a photo (its thumbnail, loaded), not initials."""
    image = avatar.locator("img.avatar-image")
    expect(image).to_be_visible()
    if src:
        expect(image).to_have_attribute("src", src)
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 320  # the thumbnail, fetched with the session


def test_a_profile_photo_shows_to_the_other_person_at_once_and_goes_when_removed(people):
    alice = people("Alice Picture")
    bob = people("Bob Viewer")
    start_chat(alice, bob)
    send(alice, "Hello Bob")
    open_chat(bob, "Alice Picture")
    bob_item = bob.page.locator(".chat-item", has_text="Alice Picture").locator(".avatar")
    bob_header = bob.page.locator("#conversation-avatar")
    expect(bob_item).to_have_text("AP")

    page = alice.page
    page.get_by_role("button", name="Profile and settings").click()
    card = page.locator("#side-drawer .profile-card .avatar")
    expect(page.get_by_role("button", name="Remove profile photo")).to_be_hidden()
    page.get_by_label("Choose a profile photo").set_input_files(files=[photo_file()])
    expect(page.locator("#side-drawer .profile-card").get_by_role("status")).to_have_text("Photo updated.")
    shows_photo(card)
    src = card.locator("img").get_attribute("src")
    assert src.startswith("/api/v1/media/") and src.endswith("/thumbnail")
    shows_photo(page.get_by_role("button", name="Profile and settings"), src)

    # Bob sees it without reloading: in the chat list, the open chat's header and the contact's info.
    shows_photo(bob_item, src)
    shows_photo(bob_header, src)
    # A panel closed stays closed (drawn again at the news, it used to open by itself).
    expect(bob.page.locator("#info-drawer")).to_be_hidden()
    bob.page.get_by_role("button", name="Conversation info").click()
    shows_photo(bob.page.locator("#info-drawer .info-card .avatar"), src)
    # And after a reload, from what the server says.
    bob.page.reload()
    bob.wait_until_connected()
    shows_photo(bob.page.locator(".chat-item", has_text="Alice Picture").locator(".avatar"), src)

    page.get_by_role("button", name="Remove profile photo").click()
    expect(page.locator("#side-drawer .profile-card").get_by_role("status")).to_have_text("Photo removed.")
    expect(card).to_have_text("AP")
    expect(page.get_by_role("button", name="Remove profile photo")).to_be_hidden()
    expect(page.get_by_role("button", name="Change profile photo")).to_be_focused()
    bob_item = bob.page.locator(".chat-item", has_text="Alice Picture").locator(".avatar")
    expect(bob_item).to_have_text("AP")
    expect(bob_item.locator("img")).to_have_count(0)
    assert csp_violations(alice) == [] and csp_violations(bob) == []


def test_a_document_chosen_as_a_photo_is_refused_and_says_why(people):
    ann = people("Ann Wrongfile")
    page = ann.page
    page.get_by_role("button", name="Profile and settings").click()

    page.get_by_label("Choose a profile photo").set_input_files(
        files=[{"name": "notes.pdf", "mimeType": "application/pdf", "buffer": samples.PDF}])

    expect(page.locator("#side-drawer .profile-card [role=alert]")).to_contain_text("not an image")
    expect(page.locator("#side-drawer .profile-card .avatar")).to_have_text("AW")


def test_a_group_admin_sets_the_group_photo_and_the_members_see_it(people, server):
    alice = people("Alice Admin")
    bob = people("Bob Member")
    group_by_api(server, alice, "Photo club", bob)
    open_chat(alice, "Photo club")
    bob_item = bob.page.locator(".chat-item", has_text="Photo club").locator(".avatar")
    expect(bob_item.locator(".icon-group")).to_be_visible()

    alice.page.locator("#open-info").click()
    info = alice.page.locator("#info-drawer")
    info.get_by_label("Choose a group photo").set_input_files(files=[photo_file((200, 60, 60))])
    shows_photo(info.locator(".info-card .avatar"))
    src = info.locator(".info-card .avatar img").get_attribute("src")
    shows_photo(alice.page.locator("#conversation-avatar"), src)
    expect(alice.page.locator("#messages .msg-system").last).to_have_text("Alice Admin changed the group photo")

    shows_photo(bob_item, src)
    open_chat(bob, "Photo club")
    shows_photo(bob.page.locator("#conversation-avatar"), src)
    expect(bob.page.locator("#messages .msg-system").last).to_have_text("Alice Admin changed the group photo")
    bob.page.locator("#open-info").click()
    expect(bob.page.get_by_label("Choose a group photo")).to_have_count(0)  # not an admin

    info.get_by_role("button", name="Remove group photo").click()
    expect(bob.page.locator("#conversation-avatar .icon-group")).to_be_visible()
    expect(bob.page.locator("#conversation-avatar img")).to_have_count(0)
    assert csp_violations(alice) == [] and csp_violations(bob) == []
