"""Desktop notifications and muted chats in the browser: the chat list offers to turn notifications
on; once allowed, a message from someone else in a chat I am not looking at shows one (clicking it
opens the chat); muting a chat (for 8 hours, a week, always) silences it on every device of mine,
greys its badge and leaves it out of the tab title's count, until I unmute it or the time is up; a
chat pinned from the same panel heads the list on every device of mine until I unpin it.

The browser's own notifications go to the desktop, out of a test's sight: the page's Notification
API is replaced (before any script of the page runs) by a recorder that keeps what the page asked
for, with the permission the test says."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, group_by_api, open_chat, send, start_chat  # noqa: F401

pytestmark = pytest.mark.browser

RECORDER = """
(() => {
  let permission = %r;
  window.__asked = 0;
  window.__notifications = [];
  class RecordedNotification {
    constructor(title, options = {}) {
      this.title = title;
      this.body = options.body;
      this.tag = options.tag;
      this.closed = false;
      this.onclick = null;
      window.__notifications.push(this);
      // What a test can wait for (waiting on a script would need eval, which the page's CSP refuses).
      document.documentElement.dataset.notified = String(window.__notifications.length);
    }
    close() { this.closed = true; }
    static get permission() { return permission; }
    static async requestPermission() { window.__asked += 1; permission = "granted"; return permission; }
  }
  window.Notification = RecordedNotification;
})();
"""


def with_notifications(people, name: str, permission: str):
    person = people(name, register=False)
    person.context.add_init_script(RECORDER % permission)
    return person.register()


def notified(person) -> list[dict]:
    return person.page.evaluate("window.__notifications.map((n) => ({title: n.title, body: n.body, tag: n.tag}))")


def wait_for_notifications(person, count: int) -> None:
    expect(person.page.locator("html")).to_have_attribute("data-notified", str(count))


def offer(page):
    return page.get_by_role("region", name="Desktop notifications")


def test_notified_of_a_chat_not_in_view_until_muted_then_again_once_unmuted_elsewhere(people, server):
    alice = with_notifications(people, "Alice Listener", "default")
    bob, carol = people("Bob Caller"), people("Carol Other", register=False).register_by_api()

    # Asked only on her click; then the offer goes.
    expect(offer(alice.page)).to_be_visible()
    assert alice.page.evaluate("window.__asked") == 0
    offer(alice.page).get_by_role("button", name="Turn on desktop notifications").click()
    expect(offer(alice.page)).to_be_hidden()
    assert alice.page.evaluate("window.__asked") == 1

    start_chat(bob, alice)
    send(bob, "are you free tonight?")
    item = alice.page.locator(".chat-item", has_text="Bob Caller")
    expect(item.locator(".unread-badge")).to_have_text("1")
    chat_id = int(item.get_attribute("data-conversation"))
    wait_for_notifications(alice, 1)
    assert notified(alice) == [{"title": "Bob Caller", "body": "are you free tonight?", "tag": f"conversation-{chat_id}"}]
    expect(alice.page).to_have_title("(1) messenger")

    # Her click on it opens the chat; what comes while she looks at it notifies nobody.
    alice.page.evaluate("window.__notifications[0].onclick()")
    expect(alice.page.locator("#conversation-title")).to_have_text("Bob Caller")
    assert alice.page.evaluate("window.__notifications[0].closed")
    send(bob, "8pm?")
    expect(bubble(alice.page, "8pm?")).to_have_count(1)

    # Muted for 8 hours: the info panel says until when, her other devices know it too.
    alice.page.get_by_role("button", name="Conversation info").click()
    info = alice.page.locator("#info-drawer")
    info.get_by_role("button", name="Mute notifications").click()
    info.get_by_role("group", name="Mute notifications for").get_by_role("button", name="8 hours").click()
    expect(info.locator(".mute-state")).to_have_text(re.compile(r"^Muted until (today|tomorrow) at \d\d:\d\d$"))
    expect(info.get_by_role("button", name="Unmute notifications")).to_be_visible()
    on_her_phone = server.api("GET", f"conversations/{chat_id}", token=alice.token())
    assert on_her_phone["muted"] is True and on_her_phone["muted_until"]

    # Looking at another chat, Bob's messages still come, unread under a grey badge, silently.
    start_chat(alice, carol)
    send(bob, "still there?")
    expect(item.locator(".unread-badge")).to_have_text("1")
    expect(item.locator(".unread-badge")).to_have_class(re.compile("unread-badge-muted"))
    expect(item.get_by_role("img", name="Muted")).to_be_visible()
    expect(alice.page).to_have_title("messenger")

    # Unmuted on her phone: this page hears of it at once, and the next message notifies again.
    server.api("DELETE", f"conversations/{chat_id}/mute", token=alice.token())
    expect(item.get_by_role("img", name="Muted")).to_have_count(0)
    expect(alice.page).to_have_title("(1) messenger")
    send(bob, "hello??")
    wait_for_notifications(alice, 2)
    assert notified(alice)[1] == {"title": "Bob Caller", "body": "hello??", "tag": f"conversation-{chat_id}"}
    assert alice.console_errors == [] and bob.console_errors == []


def test_the_offer_put_aside_stays_away_and_none_is_made_where_the_browser_said_no(people):
    alice = with_notifications(people, "Alice Later", "default")
    offer(alice.page).get_by_role("button", name="Not now").click()
    expect(offer(alice.page)).to_be_hidden()
    alice.page.reload()
    alice.wait_until_connected()
    expect(alice.page.locator("#chat-list-empty")).to_be_visible()
    expect(offer(alice.page)).to_be_hidden()
    assert alice.page.evaluate("window.__asked") == 0

    bob = with_notifications(people, "Bob Refused", "denied")
    expect(bob.page.locator("#chat-list-empty")).to_be_visible()
    expect(offer(bob.page)).to_be_hidden()
    start_chat(alice, bob)
    send(alice, "hi")
    expect(bob.page.locator(".chat-item", has_text="Alice Later").locator(".unread-badge")).to_have_text("1")
    assert notified(bob) == []


def test_in_a_group_the_notification_names_the_group_and_the_writer_and_a_mute_for_good_says_so(people, server):
    alice = with_notifications(people, "Alice Member", "granted")
    bob = people("Bob Poster")
    group_by_api(server, bob, "Book club", alice)
    [group] = server.api("GET", "conversations", token=bob.token())
    expect(offer(alice.page)).to_be_hidden()  # allowed already
    server.api("POST", f"conversations/{group['id']}/messages", {"client_id": "c1", "text": "chapter 3 tonight"},
               token=bob.token())
    wait_for_notifications(alice, 1)
    assert notified(alice) == [{"title": "Book club", "body": "Bob Poster: chapter 3 tonight",
                                "tag": f"conversation-{group['id']}"}]

    open_chat(alice, "Book club")
    alice.page.get_by_role("button", name="Conversation info").click()
    info = alice.page.locator("#info-drawer")
    info.get_by_role("button", name="Mute notifications").click()
    info.get_by_role("button", name="Always").click()
    expect(info.locator(".mute-state")).to_have_text("Muted")
    alice.page.reload()
    alice.wait_until_connected()
    expect(alice.page.locator(".chat-item", has_text="Book club").get_by_role("img", name="Muted")).to_be_visible()
    server.api("POST", f"conversations/{group['id']}/messages", {"client_id": "c2", "text": "or tomorrow"},
               token=bob.token())
    expect(alice.page.locator(".chat-item", has_text="Book club")).to_contain_text("or tomorrow")
    assert len(notified(alice)) == 0  # a new page, and nothing since: muted


def test_a_chat_pinned_from_its_info_heads_the_list_on_every_device_until_unpinned(people, server):
    alice = with_notifications(people, "Alice Pinner", "denied")
    bob, carol = people("Bob First"), people("Carol Later")
    start_chat(bob, alice)
    send(bob, "from Bob")
    start_chat(carol, alice)
    send(carol, "from Carol")
    titles = alice.page.locator(".chat-item .chat-item-title")
    expect(titles).to_have_text(["Carol Later", "Bob First"])

    open_chat(alice, "Bob First")
    alice.page.get_by_role("button", name="Conversation info").click()
    alice.page.locator("#info-drawer").get_by_role("button", name="Pin chat").click()
    expect(alice.page.locator("#info-drawer").get_by_role("button", name="Unpin chat")).to_be_visible()
    send(carol, "more from Carol")  # newer activity does not move a pinned chat down
    expect(alice.page.locator(".chat-item", has_text="Carol Later")).to_contain_text("more from Carol")
    expect(titles).to_have_text(["Bob First", "Carol Later"])
    expect(alice.page.locator(".chat-item", has_text="Bob First").get_by_role("img", name="Pinned")).to_be_visible()
    alice.page.reload()
    alice.wait_until_connected()
    expect(titles).to_have_text(["Bob First", "Carol Later"])

    # Unpinned on her phone: this page follows at once.
    [chat] = [c for c in server.api("GET", "conversations", token=alice.token()) if c["title"] == "Bob First"]
    server.api("DELETE", f"conversations/{chat['id']}/pin", token=alice.token())
    expect(titles).to_have_text(["Carol Later", "Bob First"])
    expect(alice.page.get_by_role("img", name="Pinned")).to_have_count(0)
    assert alice.console_errors == []
