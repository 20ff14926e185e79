"""Media received in the browser: a photo shows as its thumbnail (fetched with the session cookie,
under the content security policy) and opens full size; a voice message gets a player."""

import json
import re
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from tests import media_samples as samples
from tests.browser.test_chat_ui import _patience, bubble, composer, csp_violations, open_chat, send  # noqa: F401

pytestmark = pytest.mark.browser


def upload(server, token: str, content: bytes, kind: str) -> dict:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{server.url}/api/v1/media", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_photo_and_a_voice_message_arrive_and_show(people, server):
    alice = people("Alice Media")
    bob = people("Bob Media", register=False).register_by_api()
    token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=token)
    photo = upload(server, token, samples.image_bytes("PNG", size=(640, 480)), "image")
    voice = upload(server, token, samples.OGG_OPUS, "voice")
    server.api("POST", f"conversations/{conversation['id']}/messages",
               {"client_id": "p1", "media_id": photo["id"], "text": "Look at this"}, token=token)
    server.api("POST", f"conversations/{conversation['id']}/messages",
               {"client_id": "v1", "media_id": voice["id"]}, token=token)

    item = alice.page.locator(".chat-item", has_text="Bob Media")
    expect(item).to_contain_text("Voice message")
    open_chat(alice, "Bob Media")
    row = bubble(alice.page, "Look at this")
    image = row.locator("img")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 320  # the thumbnail, loaded with the session
    expect(row.get_by_role("link", name="Photo, open full size")).to_have_attribute("href", photo["url"])
    expect(alice.page.locator("#messages .msg-voice audio")).to_have_attribute("src", voice["url"])
    assert csp_violations(alice) == []


@pytest.fixture(scope="module")
def chromium():
    """Chromium with a fake microphone (a beeping tone) that needs no permission prompt."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


def test_record_a_voice_message_and_play_it_on_the_other_side(people):
    from tests.browser.test_chat_ui import start_chat

    alice = people("Alice Voice")
    bob = people("Bob Voice")
    alice.context.grant_permissions(["microphone"])
    start_chat(alice, bob)

    alice.page.get_by_role("button", name="Record a voice message").click()
    recording = alice.page.locator(".attach-recording")
    expect(recording).to_contain_text("Recording")
    expect(recording).to_contain_text("0:02", timeout=6000)
    alice.page.get_by_role("button", name="Stop and send").click()
    mine = alice.page.locator("#messages .msg-out .msg-voice")
    expect(mine).to_have_count(1)
    expect(alice.page.locator("#messages .msg-out").last).to_have_attribute("data-status", re.compile("sent|delivered|read"))

    item = bob.page.locator(".chat-item", has_text="Alice Voice")
    expect(item).to_contain_text("Voice message")
    open_chat(bob, "Alice Voice")
    player = bob.page.locator("#messages .msg-in .msg-voice")
    expect(player).to_have_count(1)
    # The duration is learnt from the file (MediaRecorder's WebM carries none in its header).
    expect(player.locator(".voice-time")).to_have_text(re.compile(r"^0:0[2-4]$"))
    player.get_by_role("button", name="Play voice message").click()
    expect(player.get_by_role("button", name="Pause voice message")).to_be_visible()
    expect(player.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-4] / 0:0[2-4]$"))
    audio = player.locator("audio")
    assert audio.evaluate("a => a.currentTime") > 0
    # Seek back to the start with the bar, then let it play to the end.
    player.locator(".voice-seek").fill("0")
    expect(player.get_by_role("button", name="Play voice message")).to_be_visible(timeout=10_000)
    assert audio.evaluate("a => a.ended") is True
    assert csp_violations(alice) == [] and csp_violations(bob) == []


def test_attach_a_photo_with_a_caption(people):
    from tests.browser.test_chat_ui import start_chat

    alice = people("Alice Photo")
    bob = people("Bob Photo")
    start_chat(alice, bob)
    alice.page.locator("#attach-input").set_input_files(
        files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": samples.image_bytes("PNG", size=(900, 600))}]
    )
    expect(alice.page.locator("#attach-panel img.attach-preview")).to_be_visible()
    alice.page.get_by_label("Message", exact=True).fill("Holiday!")
    alice.page.get_by_label("Message", exact=True).press("Enter")
    expect(alice.page.locator("#attach-panel")).to_be_hidden()
    expect(bubble(alice.page, "Holiday!").locator("img")).to_be_visible()

    open_chat(bob, "Alice Photo")
    row = bubble(bob.page, "Holiday!")
    expect(row.locator("img")).to_have_js_property("complete", True)
    assert row.locator("img").evaluate("img => img.naturalWidth") == 320
    href = row.get_by_role("link", name="Photo, open full size").get_attribute("href")
    full = bob.page.request.get(bob.server.url + href)
    assert full.status == 200 and full.headers["content-type"] == "image/png"
    assert csp_violations(alice) == [] and csp_violations(bob) == []


def send_and_play_a_voice_message(person, *, status: str):
    """Record three seconds in the open chat, send it, and play it from the row it makes there (which
    then has `status`): the row, and its audio element while it plays."""
    person.page.get_by_role("button", name="Record a voice message").click()
    expect(person.page.locator(".attach-recording")).to_contain_text("0:03", timeout=8000)
    person.page.get_by_role("button", name="Stop and send").click()
    mine = person.page.locator("#messages .msg-out").last
    expect(mine).to_have_attribute("data-status", status)
    player = mine.locator(".msg-voice")
    expect(player.locator(".voice-time")).to_have_text(re.compile(r"^0:0[3-5]$"))
    player.get_by_role("button", name="Play voice message").click()
    expect(player.get_by_role("button", name="Pause voice message")).to_be_visible()
    return mine, player.locator("audio").element_handle()


def test_my_voice_message_keeps_playing_when_its_ticks_change(people, server):
    """A row in the chat used to be rebuilt whenever its message's status changed: a voice message
    (or video) of mine that was playing stopped and started over when the other person read it, and
    its photo was loaded again. Only the ticks change now."""
    alice = people("Alice Playing", register=False).register_by_api()
    bob = people("Bob Playing", register=False).register_by_api()
    bob_token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=bob_token)["id"]
    alice.login()
    alice.context.grant_permissions(["microphone"])
    open_chat(alice, "Bob Playing")

    mine, audio = send_and_play_a_voice_message(alice, status="sent")

    server.api("POST", f"conversations/{conversation}/read", {"seq": int(mine.get_attribute("data-seq"))}, token=bob_token)
    expect(mine).to_have_attribute("data-status", "read")
    expect(mine.get_by_role("img", name="Read")).to_be_visible()
    assert audio.evaluate("a => a.isConnected && a.currentTime > 0")  # the same player, not a new one at 0:00


def test_my_voice_message_keeps_playing_when_it_is_sent(people, server):
    """A message of mine shows at once, pending, and settles when the server has stored it. Its row
    used to be rebuilt then: a voice message played meanwhile stopped and went back to 0:00."""
    alice = people("Alice Pending", register=False).register_by_api()
    bob = people("Bob Pending", register=False).register_by_api()
    server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=bob.token())
    socket = {"held": [], "holding": True}

    def hold_sends(page_socket):
        """Alice's socket to the server, holding back her sends until told."""
        to_server = socket["server"] = page_socket.connect_to_server()

        def from_page(frame):
            if socket["holding"] and json.loads(frame).get("type") == "message.send":
                socket["held"].append(frame)
            else:
                to_server.send(frame)

        page_socket.on_message(from_page)

    alice.page.route_web_socket(lambda url: "/ws/v1/" in url, hold_sends)
    alice.login()
    alice.context.grant_permissions(["microphone"])
    open_chat(alice, "Bob Pending")

    mine, audio = send_and_play_a_voice_message(alice, status="pending")

    socket["holding"] = False
    assert len(socket["held"]) == 1
    socket["server"].send(socket["held"].pop())
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(mine.get_by_role("img", name=re.compile("Sent|Delivered|Read"))).to_be_visible()
    assert mine.get_attribute("data-seq").isdigit()  # the stored message's
    assert audio.evaluate("a => a.isConnected && !a.paused && a.currentTime > 0")  # the same player, still playing


def alice_with_chats_with(people, server, *names):
    """Alice, logged in, with a direct chat with each of `names` (who started them)."""
    alice = people("Alice Attach", register=False).register_by_api()
    for name in names:
        other = people(name, register=False).register_by_api()
        server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=other.token())
    alice.login()
    return alice


def test_an_upload_that_ends_in_another_chat_leaves_what_is_written_there(people, server):
    """A photo's upload can outlast a visit to another chat. When it ended, the page cleared the
    composer, whichever chat was open by then: what Alice was writing there was lost. The caption
    now leaves the composer when she sends, as a text does."""
    alice = alice_with_chats_with(people, server, "Bob Upload", "Carol Upload")
    page = alice.page
    held = []
    page.route("**/api/v1/media", lambda route: held.append(route))
    open_chat(alice, "Bob Upload")
    page.locator("#attach-input").set_input_files(
        files=[{"name": "view.png", "mimeType": "image/png", "buffer": samples.image_bytes("PNG", size=(300, 200))}]
    )
    composer(page).fill("Look at the view")
    composer(page).press("Enter")
    expect(page.get_by_role("progressbar", name="Upload progress")).to_be_visible()
    expect(composer(page)).to_have_value("")

    open_chat(alice, "Carol Upload")
    composer(page).fill("half-written reply")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    held[0].continue_()
    bob_item = page.locator(".chat-item", has_text="Bob Upload")
    expect(bob_item).to_contain_text("Photo: Look at the view")
    expect(bob_item.get_by_role("img", name=re.compile("Sent|Delivered|Read"))).to_be_visible()
    expect(composer(page)).to_have_value("half-written reply")

    open_chat(alice, "Bob Upload")
    expect(bubble(page, "Look at the view").locator("img")).to_be_visible()
    expect(composer(page)).to_have_value("")
    open_chat(alice, "Carol Upload")
    expect(composer(page)).to_have_value("half-written reply")


def test_an_attachment_stays_with_the_chat_it_was_chosen_in(people, server):
    """A file chosen in one chat used to stay on show in the next one opened, and went with the next
    message sent there, to the wrong person. It now stays with its chat, as a draft does."""
    alice = alice_with_chats_with(people, server, "Bob Files", "Carol Files")
    page = alice.page
    panel = page.locator("#attach-panel")
    open_chat(alice, "Bob Files")
    page.locator("#attach-input").set_input_files(
        files=[{"name": "plan.txt", "mimeType": "text/plain", "buffer": b"the plan, in full\n" * 100}]
    )
    expect(panel).to_contain_text("plan.txt")

    open_chat(alice, "Carol Files")
    expect(panel).to_be_hidden()
    send(alice, "just a text for Carol")
    mine = bubble(page, "just a text for Carol")
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(mine.locator(".msg-media")).to_have_count(0)

    open_chat(alice, "Bob Files")
    expect(panel).to_contain_text("plan.txt")
    composer(page).fill("the plan")
    composer(page).press("Enter")
    expect(panel).to_be_hidden()
    expect(bubble(page, "the plan").locator(".msg-document")).to_be_visible()
    expect(bubble(page, "the plan").locator(".msg-document")).to_have_text(re.compile(r"^plan\.txt \(\d+ KB\)$"))
    expect(bubble(page, "the plan").locator(".msg-document")).to_have_attribute("download", "plan.txt")
    for conversation in server.api("GET", "conversations", token=alice.token()):
        peer = next(m["user"]["display_name"] for m in conversation["members"] if m["user"]["display_name"] != "Alice Attach")
        history = server.api("GET", f"conversations/{conversation['id']}/messages", token=alice.token())["results"]
        sent = [(m["text"], m["media"]["kind"] if m["media"] else None) for m in history]
        assert sent == {"Carol Files": [("just a text for Carol", None)], "Bob Files": [("the plan", "document")]}[peer]


def test_a_photo_bubble_is_as_wide_as_the_photo_in_it(people, server):
    alice = people("Alice Wide")
    bob = people("Bob Wide", register=False).register_by_api()
    token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=token)
    for n, size in enumerate([(1600, 1200), (200, 150)]):
        photo = upload(server, token, samples.image_bytes("PNG", size=size), "image")
        server.api("POST", f"conversations/{conversation['id']}/messages",
                   {"client_id": f"w{n}", "media_id": photo["id"], "text": f"photo {n}"}, token=token)
    open_chat(alice, "Bob Wide")
    for n, shown in enumerate([320, 200]):
        row = bubble(alice.page, f"photo {n}")
        image = row.locator("img")
        expect(image).to_have_js_property("complete", True)
        # A big photo shows 320 px wide, a small one at its own size; the bubble fits it (and its
        # padding), with no blank strip beside it.
        assert round(image.bounding_box()["width"]) == shown
        assert row.locator(".bubble").bounding_box()["width"] <= shown + 24
