"""A developer app's account in the browser: its messages (text and a photo sent through the
developer API) arrive like anyone's, and its name carries a "business" badge in the chat list, the
conversation header and the contact info, where a person's does not; and no new group offers it."""

import json
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from tests import media_samples as samples
from tests.browser.test_chat_ui import _patience, bubble, csp_violations, open_chat, start_chat  # noqa: F401

pytestmark = pytest.mark.browser


def developer_api(server, method: str, path: str, key: str, *, body: dict | None = None,
                  file: bytes | None = None) -> dict:
    """Call /developer/v1/<path> with an API key: JSON, or a multipart upload of `file`."""
    headers = {"Authorization": f"Bearer {key}"}
    if file is not None:
        boundary = uuid.uuid4().hex
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + file + f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    else:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{server.url}/developer/v1/{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_an_apps_account_shows_a_business_badge_and_its_photo(people, server, shot):
    alice = people("Alice Shopper")
    dana = people("Dana Developer", register=False).register_by_api()
    app = server.api("POST", "developer/apps", {"name": "Corner Shop"}, token=dana.token())
    key = server.api("POST", f"developer/apps/{app['id']}/keys", {"scopes": ["messages:send", "media:write"]},
                     token=dana.token())["key"]
    server.api("POST", f"apps/{app['id']}/opt-in", token=alice.token())

    developer_api(server, "POST", "messages", key,
                  body={"to": alice.phone, "type": "text", "text": {"body": "Your order is ready"}})
    photo = developer_api(server, "POST", "media", key, file=samples.image_bytes("PNG", size=(640, 480)))
    developer_api(server, "POST", "messages", key,
                  body={"to": alice.phone, "type": "image", "image": {"id": photo["id"], "caption": "Your receipt"}})

    # The chat list: the app's name, with the badge, and the photo as the last message.
    item = alice.page.locator(".chat-item", has_text="Corner Shop")
    expect(item).to_contain_text("Photo: Your receipt")
    expect(item.locator(".chat-item-title")).to_have_text("Corner Shop")
    expect(item.locator(".business-badge")).to_have_text("Business")
    # The conversation header: the badge beside the name, and no fake phone number below it.
    open_chat(alice, "Corner Shop")
    expect(alice.page.locator("#conversation-badge")).to_be_visible()
    expect(alice.page.locator("#conversation-badge")).to_have_text("Business")
    expect(alice.page.locator("#conversation-subtitle")).to_have_text("Business account")
    expect(bubble(alice.page, "Your order is ready")).to_have_count(1)
    image = bubble(alice.page, "Your receipt").locator("img")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 320  # the thumbnail of the app's photo
    # The contact info.
    alice.page.get_by_role("button", name="Conversation info").click()
    card = alice.page.locator("#info-drawer .info-card")
    expect(card.locator("h3")).to_have_text("Corner Shop")
    expect(card.locator(".business-badge")).to_have_text("Business")
    shot(alice.page, "business-chat")

    # A person has no badge, in the list or the header.
    bob = people("Bob Person")
    start_chat(alice, bob)
    expect(alice.page.locator("#conversation-badge")).to_be_hidden()
    expect(alice.page.locator(".chat-item", has_text="Bob Person").locator(".business-badge")).to_have_count(0)
    expect(item.locator(".business-badge")).to_have_count(1)

    # A new group offers the person, not the app: apps chat one to one only.
    alice.page.get_by_role("button", name="New group").click()
    side = alice.page.locator("#side-drawer")
    expect(side.get_by_role("checkbox", name="Bob Person")).to_be_visible()
    expect(side.get_by_role("checkbox", name="Corner Shop")).to_have_count(0)
    assert csp_violations(alice) == [] and alice.console_errors == []
