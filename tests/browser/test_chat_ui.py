"""The browser UI end to end: real people in headless Chromium, a real Daphne, real websockets."""

import re
import time
import urllib.error

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.browser

EXPECT_TIMEOUT = 10_000


@pytest.fixture(autouse=True)
def _patience():
    expect.set_options(timeout=EXPECT_TIMEOUT)


def composer(page):
    return page.get_by_label("Message", exact=True)


def start_chat(person, other):
    page = person.page
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Phone number").fill(other.phone)
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator("#conversation-title")).to_have_text(other.name)


def open_chat(person, title):
    person.page.locator(".chat-item", has_text=title).click()
    expect(person.page.locator("#conversation-title")).to_have_text(title)


def send(person, text, *, button=False):
    composer(person.page).fill(text)
    if button:
        person.page.get_by_role("button", name="Send", exact=True).click()
    else:
        composer(person.page).press("Enter")


def bubble(page, text):
    """The message row whose text contains `text` (not its time: "history 12" + "04:05" is no match)."""
    return page.locator("#messages .msg").filter(has=page.locator(".msg-text", has_text=text))


def texts(page):
    return page.locator("#messages .msg:not(.msg-system) .msg-text").all_inner_texts()


def group_by_api(server, creator, title, *members):
    """A group `creator` makes over REST with `members`, saved as contacts first (a group is made of
    people one knows)."""
    token = creator.token()
    ids = []
    for person in members:
        server.api("POST", "contacts", {"phone_number": person.phone}, token=token)
        ids.append(server.api("GET", "me", token=person.token())["id"])
    server.api("POST", "conversations", {"kind": "group", "title": title, "member_ids": ids}, token=token)


def csp_violations(person):
    return [e for e in person.console_errors if "Content Security Policy" in e or "Refused to" in e]


def test_register_log_out_and_log_in_again(people, server, shot):
    ann = people("Ann Example", register=False)
    page = ann.page
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
    response = page.request.get(server.url + "/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_label("Phone number")).to_be_focused()
    shot(page, "login")

    page.get_by_label("Phone number").fill("+12025550100")
    page.get_by_label("Password", exact=True).fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Phone number or password is wrong")

    ann.register()
    expect(page.get_by_role("button", name="New chat")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/"))

    page.get_by_label("Phone number").fill(ann.phone)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password", exact=True).press("Enter")
    expect(page).to_have_url(server.url + "/")
    expect(page.locator("#chat-list-empty")).to_be_visible()
    assert csp_violations(ann) == []


def test_two_people_chat_in_real_time(people, shot):
    alice = people("Alice Liddell")
    bob = people("Bob Builder")
    start_chat(alice, bob)

    # Alice writes: it shows at once, then one tick when stored; Bob's list lights up live.
    send(alice, "Hello Bob!")
    mine = bubble(alice.page, "Hello Bob!")
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered"))
    item = bob.page.locator(".chat-item", has_text="Alice Liddell")
    expect(item).to_contain_text("Hello Bob!")
    expect(item.locator(".unread-badge")).to_have_text("1")
    shot(bob.page, "chat-list")
    # Bob's page holds it (acknowledged) without opening it: two grey ticks for Alice.
    expect(mine).to_have_attribute("data-status", "delivered")
    expect(mine.get_by_role("img", name="Delivered")).to_be_visible()

    # Bob opens the chat: it is read, the ticks turn blue and his badge goes.
    open_chat(bob, "Alice Liddell")
    expect(bubble(bob.page, "Hello Bob!")).to_have_count(1)
    expect(mine).to_have_attribute("data-status", "read")
    expect(mine.get_by_role("img", name="Read")).to_be_visible()
    expect(item.locator(".unread-badge")).to_have_count(0)

    # Bob types: Alice sees it in the header; then he sends with the Send button.
    composer(bob.page).press_sequentially("Hi Al", delay=30)
    expect(alice.page.locator("#conversation-subtitle")).to_have_text("typing…")
    composer(bob.page).press_sequentially("ice!", delay=10)
    bob.page.get_by_role("button", name="Send", exact=True).click()
    expect(bubble(alice.page, "Hi Alice!")).to_have_count(1)
    expect(alice.page.locator("#conversation-subtitle")).to_have_text("online")
    expect(bubble(bob.page, "Hi Alice!")).to_have_attribute("data-status", "read")

    # Text is text: markup in a message is shown, never interpreted.
    send(bob, '<img src=x onerror="alert(1)"><b>bold?</b>')
    hostile = bubble(alice.page, "bold?")
    expect(hostile.locator(".msg-text")).to_have_text('<img src=x onerror="alert(1)"><b>bold?</b>')
    expect(hostile.locator("b, img")).to_have_count(0)
    expect(alice.page.locator(".chat-item").first).to_contain_text("<b>bold?</b>")

    # Both ways, several in a row, in order.
    for n in range(3):
        send(alice, f"ping {n}")
    expect(bob.page.locator("#messages .msg-text", has_text="ping 2")).to_have_count(1)
    assert texts(bob.page)[-3:] == ["ping 0", "ping 1", "ping 2"]
    expect(bubble(alice.page, "ping 2")).to_have_attribute("data-status", "read")
    shot(alice.page, "chat")

    # A reload keeps the history, in order, and the conversation stays open.
    alice.page.reload()
    expect(alice.page.locator("#conversation-title")).to_have_text("Bob Builder")
    expect(bubble(alice.page, "ping 2")).to_have_count(1)
    assert texts(alice.page) == ["Hello Bob!", "Hi Alice!", '<img src=x onerror="alert(1)"><b>bold?</b>',
                                 "ping 0", "ping 1", "ping 2"]
    expect(bubble(alice.page, "Hello Bob!")).to_have_attribute("data-status", "read")
    assert alice.dialogs == [] and bob.dialogs == []
    assert csp_violations(alice) == [] and csp_violations(bob) == []


def test_reconnects_after_the_server_restarts_and_shows_what_was_missed(people, server, shot):
    alice = people("Alice Restart")
    bob = people("Bob Restart")
    start_chat(alice, bob)
    send(alice, "before the cut")
    open_chat(bob, "Alice Restart")
    expect(bubble(alice.page, "before the cut")).to_have_attribute("data-status", "read")
    bob_token = bob.token()

    server.stop()
    for person in (alice, bob):
        expect(person.page.locator("#connection-banner")).to_contain_text("Reconnecting")
    # Written while the server is down: stays pending and goes out once the socket is back.
    send(alice, "written offline")
    expect(bubble(alice.page, "written offline")).to_have_attribute("data-status", "pending")
    alice.page.wait_for_timeout(300)  # let the banner finish sliding in
    shot(alice.page, "reconnecting")

    server.start()
    conversation = server.api("GET", "conversations", token=bob_token)[0]["id"]
    for n in range(1, 4):
        server.api("POST", f"conversations/{conversation}/messages", {"client_id": f"missed-{n}", "text": f"missed {n}"},
                   token=bob_token)

    expect(alice.page.locator("#connection-banner")).to_be_hidden()
    expect(bubble(alice.page, "missed 3")).to_have_count(1)
    expect(bubble(alice.page, "written offline")).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    got = texts(alice.page)
    assert got[0] == "before the cut"
    assert [t for t in got if t.startswith("missed")] == ["missed 1", "missed 2", "missed 3"]
    assert sorted(got) == sorted(set(got)), f"duplicates on screen: {got}"

    # Bob's page recovered too: it has Alice's offline message exactly once, and the chat works both ways.
    expect(bob.page.locator("#connection-banner")).to_be_hidden()
    open_chat(bob, "Alice Restart")
    expect(bubble(bob.page, "written offline")).to_have_count(1)
    expect(bubble(bob.page, "missed 3")).to_have_count(1)
    send(bob, "back online")
    expect(bubble(alice.page, "back online")).to_have_count(1)
    assert texts(alice.page).count("written offline") == 1
    assert texts(bob.page) == texts(alice.page)


def test_a_message_written_offline_goes_out_however_long_the_connection_is_away(people, server):
    """The banner says what is written while the connection is away is sent when it is back. A
    message written offline used to fail after 10 s all the same (that deadline ran with no socket
    to answer it) and then stayed failed on reconnect."""
    alice = people("Alice Patient")
    bob = people("Bob Patient")
    start_chat(alice, bob)
    send(alice, "before the cut")
    open_chat(bob, "Alice Patient")
    expect(bubble(bob.page, "before the cut")).to_have_count(1)

    server.stop()
    banner = alice.page.locator("#connection-banner")
    expect(banner).to_contain_text("Messages you write now will be sent when the connection is back.")
    send(alice, "written offline long")
    alice.page.wait_for_timeout(11_000)
    mine = bubble(alice.page, "written offline long")
    expect(mine).to_have_attribute("data-status", "pending")
    expect(mine.get_by_role("button", name="Retry")).to_have_count(0)

    server.start()
    expect(banner).to_be_hidden(timeout=20_000)
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(bubble(bob.page, "written offline long")).to_have_count(1, timeout=20_000)
    bob.page.wait_for_timeout(500)  # a second copy, were one sent, would be on screen by now
    assert texts(bob.page).count("written offline long") == 1


def test_blocked_send_fails_and_retry_uses_the_same_client_id(people, server):
    alice = people("Alice Blocked")
    bob = people("Bob Blocker")
    start_chat(alice, bob)
    send(alice, "first")
    open_chat(bob, "Alice Blocked")
    expect(bubble(bob.page, "first")).to_have_count(1)

    bob.page.get_by_role("button", name="Conversation info").click()
    bob.page.get_by_role("button", name="Block Alice Blocked").click()
    expect(bob.page.get_by_role("button", name="Unblock Alice Blocked")).to_be_visible()
    expect(bob.page.locator("#composer-notice")).to_contain_text("You blocked Alice Blocked")

    send(alice, "are you there?")
    failed = bubble(alice.page, "are you there?")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_contain_text("blocked you")
    client_id = failed.get_attribute("data-client-id")

    bob.page.get_by_role("button", name="Unblock Alice Blocked").click()
    expect(bob.page.locator("#composer")).to_be_visible()
    failed.get_by_role("button", name="Retry").click()
    settled = alice.page.locator(f'#messages .msg[data-client-id="{client_id}"]')
    expect(settled).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(bubble(bob.page, "are you there?")).to_have_count(1)
    conversation = server.api("GET", "conversations", token=alice.token())[0]["id"]
    history = server.api("GET", f"conversations/{conversation}/messages", token=alice.token())
    assert [m["client_id"] for m in history["results"] if m["text"] == "are you there?"] == [client_id]


def test_a_send_refused_for_now_stays_pending_and_goes_out_when_allowed(people, server):
    """Over the send rate the server answers `rate_limited` with `retry_after`: not now, rather than
    never. The message must wait and go by itself, as a message written offline does, not show
    "Not sent" for the person to retry by hand."""
    alice = people("Alice Hasty")
    bob = people("Bob Patient Reader")
    start_chat(alice, bob)
    usual = dict(server.env)
    # A window long enough that a loaded machine cannot let it pass before the checks below: with 3 s
    # the third send could be made after "hasty one" had left the window (never refused), or be
    # resent and stored before the page was looked at (about 2 s after the refusal).
    server.env.update(MESSENGER_SEND_RATE="2", MESSENGER_SEND_RATE_WINDOW="10")
    try:
        server.restart()
        expect(alice.page.locator("#connection-banner")).to_be_hidden(timeout=20_000)
        for text in ("hasty one", "hasty two", "hasty three"):
            send(alice, text)
        expect(bubble(alice.page, "hasty two")).to_have_attribute("data-status", re.compile("sent|delivered|read"))
        third = bubble(alice.page, "hasty three")
        alice.page.wait_for_timeout(1_000)  # refused by now (the window lasts 10 s)
        expect(third).to_have_attribute("data-status", "pending")
        expect(third.get_by_role("button", name="Retry")).to_have_count(0)
        expect(third).to_have_attribute("data-status", re.compile("sent|delivered|read"), timeout=20_000)
    finally:
        server.env = usual
        server.restart()
    open_chat(bob, "Alice Hasty")
    expect(bubble(bob.page, "hasty three")).to_have_count(1)
    conversation = server.api("GET", "conversations", token=alice.token())[0]["id"]
    history = server.api("GET", f"conversations/{conversation}/messages", token=alice.token())
    assert [m["text"] for m in history["results"]].count("hasty three") == 1


def test_group_with_members_added_and_removed(people, server, shot):
    alice = people("Alice Admin")
    bob = people("Bob Member")
    carol_phone = "+12025559876"
    server.api("POST", "auth/register", {"phone_number": carol_phone, "password": PASSWORD, "display_name": "Carol Later"})
    start_chat(alice, bob)

    page = alice.page
    page.get_by_role("button", name="New group").click()
    page.get_by_label("Group name").fill("Weekend trip")
    page.get_by_role("checkbox", name="Bob Member").check()
    shot(page, "new-group")
    page.get_by_role("button", name="Create group").click()
    expect(page.locator("#conversation-title")).to_have_text("Weekend trip")
    expect(page.locator("#messages .msg-system")).to_contain_text("created the group")
    expect(bob.page.locator(".chat-item", has_text="Weekend trip")).to_be_visible()

    page.get_by_role("button", name="Conversation info").click()
    info = page.locator("#info-drawer")
    expect(info.get_by_role("listitem")).to_have_count(2)
    info.get_by_label("Phone number").fill(carol_phone)
    info.get_by_role("button", name="Add person").click()
    expect(info.get_by_role("checkbox", name="Carol Later")).to_be_checked()
    info.get_by_role("button", name="Add to group").click()
    expect(info.locator(".person-list").get_by_role("listitem")).to_have_count(3)
    expect(page.locator("#messages .msg-system", has_text="added Carol Later")).to_be_visible()
    send(alice, "Who brings the tent?")
    open_chat(bob, "Weekend trip")
    expect(bubble(bob.page, "Who brings the tent?")).to_have_count(1)
    # Carol has no device yet, so the message waits for her: one tick, whatever Bob does.
    expect(bubble(bob.page, "Who brings the tent?")).to_be_visible()
    expect(bubble(page, "Who brings the tent?")).to_have_attribute("data-status", "sent")
    shot(page, "group-info")

    info.get_by_role("button", name="Remove Carol Later").click()
    expect(info.locator(".person-list").get_by_role("listitem")).to_have_count(2)
    expect(page.locator("#messages .msg-system", has_text="removed Carol Later")).to_be_visible()
    expect(bob.page.locator("#messages .msg-system", has_text="removed Carol Later")).to_be_visible()
    # With Carol gone, Bob's read is all it takes for blue ticks.
    expect(bubble(page, "Who brings the tent?")).to_have_attribute("data-status", "read")
    send(bob, "Me!")
    expect(bubble(page, "Me!").locator(".msg-author")).to_have_text("Bob Member")

    # The profile: a new display name.
    page.get_by_role("button", name="Profile and settings").click()
    page.get_by_label("Display name").fill("Alice A.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    shot(page, "profile")
    assert csp_violations(alice) == []


def test_a_message_in_a_group_with_nobody_else_shows_one_tick(people):
    """While nobody but its sender is in a group, a message there is `sent` (docs/protocol.md): there
    is nobody whose device or reading could say more. The page used to show two blue ticks."""
    alice = people("Alice Alone")
    page = alice.page
    page.get_by_role("button", name="New group").click()
    page.get_by_label("Group name").fill("Notes to self")
    page.get_by_role("button", name="Create group").click()
    expect(page.locator("#conversation-title")).to_have_text("Notes to self")

    send(alice, "remember the milk")
    mine = bubble(page, "remember the milk")
    expect(mine).to_have_attribute("data-status", "sent")
    expect(mine.get_by_role("img", name="Sent")).to_be_visible()
    item = page.locator(".chat-item", has_text="Notes to self")
    expect(item.get_by_role("img", name="Sent")).to_be_visible()
    expect(item.get_by_role("img", name="Read")).to_have_count(0)


def test_phone_sized_screen_shows_list_and_chat_as_separate_views(people, shot):
    alice = people("Alice Phone", viewport={"width": 390, "height": 780})
    bob = people("Bob Desk")
    start_chat(bob, alice)
    send(bob, "Are you on your phone?")
    page = alice.page
    expect(page.locator(".chat-item", has_text="Bob Desk")).to_be_visible()
    expect(page.locator("#chat-pane")).to_be_hidden()
    shot(page, "phone-list")
    open_chat(alice, "Bob Desk")
    expect(page.locator("#sidebar")).to_be_hidden()
    send(alice, "Yes, with the keyboard: Enter sends.")
    expect(bubble(bob.page, "Enter sends.")).to_have_count(1)
    expect(bubble(page, "Enter sends.")).to_have_attribute("data-status", "read")
    shot(page, "phone-chat")
    page.get_by_role("button", name="Back to chats").click()
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator(".chat-item", has_text="Bob Desk")).to_be_focused()


def test_api_docs_and_admin_work_under_the_content_security_policy(people, server):
    ann = people("Ann Docs", register=False)
    ann.page.goto(server.url + "/api/docs/")
    expect(ann.page.locator(".swagger-ui .information-container")).to_be_visible()
    expect(ann.page.get_by_text("messenger client API")).to_be_visible()
    ann.page.goto(server.url + "/admin/login/")
    expect(ann.page.get_by_role("button", name="Log in")).to_be_visible()
    assert csp_violations(ann) == []


def test_keyboard_only_start_a_chat_and_send(people):
    alice = people("Alice Keys")
    bob = people("Bob Keys")
    page = alice.page
    page.get_by_role("button", name="New chat").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Phone number")).to_be_focused()
    page.keyboard.type(bob.phone)
    page.keyboard.press("Enter")  # submits "Start chat"
    expect(page.locator("#conversation-title")).to_have_text("Bob Keys")
    expect(composer(page)).to_be_focused()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    expect(bob.page.locator(".chat-item", has_text="Alice Keys")).to_be_visible()
    open_chat(bob, "Alice Keys")
    expect(bubble(bob.page, "second line").locator(".msg-text")).to_have_text("first line\nsecond line")
    page.keyboard.press("Escape")  # nothing to close on a desktop: the chat stays
    expect(page.locator("#conversation")).to_be_visible()
    page.get_by_role("button", name="Conversation info").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Close info")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#info-drawer")).to_be_hidden()
    expect(page.get_by_role("button", name="Conversation info")).to_be_focused()

    # Saving Bob as a contact under another name: the name shows in the contacts and the chat list.
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Phone number").fill(bob.phone)
    page.get_by_label("Name (optional, for your contacts)").fill("Bobby")
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_role("list", name="Contacts").get_by_role("listitem")).to_have_text([re.compile("Bobby")])
    page.keyboard.press("Escape")
    expect(page.locator("#side-drawer")).to_be_hidden()
    expect(page.locator(".chat-item").first).to_contain_text("Bobby")


def test_history_scrolls_back_page_by_page_with_day_separators(people, server):
    alice = people("Alice History", register=False).register_by_api()
    bob = people("Bob History", register=False).register_by_api()
    token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=token)["id"]
    for n in range(1, 121):
        server.api("POST", f"conversations/{conversation}/messages", {"client_id": f"h-{n}", "text": f"history {n}"}, token=token)
    # The first twenty were written three days ago.
    server.manage("shell", "-c", (
        "from datetime import timedelta; from django.utils import timezone; from storage.models import Message; "
        f"Message.objects.filter(conversation_id={conversation}, seq__lte=20).update(created_at=timezone.now() - timedelta(days=3))"
    ))

    alice.login()
    page = alice.page
    item = page.locator(".chat-item", has_text="Bob History")
    expect(item.locator(".unread-badge")).to_have_text("120")
    open_chat(alice, "Bob History")
    expect(page.locator("#messages .msg-text").filter(has_text=re.compile(r"^history 120$"))).to_be_visible()
    expect(item.locator(".unread-badge")).to_have_count(0)
    messages = page.locator("#messages")
    for _ in range(60):  # scroll to the top until the beginning shows (three pages of 50)
        if page.locator(".history-start").count():
            break
        messages.evaluate("box => { box.scrollTop = 0; box.dispatchEvent(new Event('scroll')); }")
        page.wait_for_timeout(250)
    expect(page.locator(".history-start")).to_contain_text("start of your chat with Bob History")
    assert texts(page) == [f"history {n}" for n in range(1, 121)]
    separators = page.locator(".day-separator").all_inner_texts()
    assert len(separators) == 2 and separators[-1] == "Today", separators
    order = page.locator("#messages-inner > *").evaluate_all(
        "els => els.map(e => e.classList.contains('day-separator') ? 'day:' + e.textContent"
        " : (e.querySelector('.msg-text') || {}).textContent || null)"
    )
    assert order.index(f"day:{separators[0]}") == order.index("history 1") - 1
    assert order.index("day:Today") == order.index("history 21") - 1


def test_a_click_on_a_chat_opens_it_even_if_the_list_changes_under_the_pointer(people, server):
    """The chat list redraws an item's contents whenever something about it changes (a message
    arrives, someone types, a receipt comes back). A click whose press and release straddle such a
    redraw must still open the chat: here the press lands, a message arrives, then the release."""
    alice = people("Alice Click", register=False).register_by_api()
    bob = people("Bob Click", register=False).register_by_api()
    token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=token)["id"]
    server.api("POST", f"conversations/{conversation}/messages", {"client_id": "click-1", "text": "first"}, token=token)

    alice.login()
    page = alice.page
    item = page.locator(".chat-item", has_text="Bob Click")
    expect(item).to_contain_text("first")
    box = item.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    server.api("POST", f"conversations/{conversation}/messages", {"client_id": "click-2", "text": "second"}, token=token)
    expect(item).to_contain_text("second")
    page.mouse.up()
    expect(page.locator("#conversation-title")).to_have_text("Bob Click")
    expect(bubble(page, "second")).to_be_visible()


def test_the_member_pickers_offer_only_people_a_group_may_take(people, server):
    """A group takes only people one knows: one's contacts and the people in one's conversations
    (docs/protocol.md). Once Alice has left the one group she shared with Carol, Carol is a
    stranger to her again: the picker no longer offers her, and "Add person" by phone saves her as a
    contact first."""
    bob = people("Bob Organiser", register=False).register_by_api()
    carol = people("Carol Fellow", register=False).register_by_api()
    alice = people("Alice Picker")
    group_by_api(server, bob, "Book club", alice, carol)
    page = alice.page
    open_chat(alice, "Book club")

    page.get_by_role("button", name="New group").click()
    expect(page.get_by_role("checkbox", name="Carol Fellow")).to_be_visible()
    page.get_by_role("button", name="Back").click()
    page.get_by_role("button", name="Conversation info").click()
    page.locator("#info-drawer").get_by_role("button", name="Exit group").click()
    expect(page.get_by_text("you're no longer a participant")).to_be_visible()

    page.get_by_role("button", name="New group").click()
    side = page.locator("#side-drawer")
    expect(side.get_by_role("checkbox")).to_have_count(0)
    page.get_by_label("Group name").fill("Second club")
    side.get_by_label("Phone number").fill(carol.phone)
    side.get_by_role("button", name="Add person").click()
    expect(side.get_by_role("checkbox", name="Carol Fellow")).to_be_checked()
    side.get_by_role("button", name="Create group").click()
    expect(page.locator("#conversation-title")).to_have_text("Second club")
    expect(page.locator("#messages .msg-system")).to_contain_text("created the group")


def test_a_page_opened_after_its_user_was_removed_from_a_group_acknowledges_what_it_missed(people, server):
    """Catch-up sends a former member what they had not received of the group, up to the notice of
    their removal (docs/protocol.md); the page lists the group, marked left, and acknowledges it so
    that it is not sent again at every connect."""
    alice = people("Alice Admin", register=False).register_by_api()
    carol = people("Carol Removed", register=False).register_by_api()
    admin, removed = alice.token(), carol.token()
    carol_id = server.api("GET", "me", token=removed)["id"]
    server.api("POST", "contacts", {"phone_number": carol.phone}, token=admin)  # a group takes people one knows
    group = server.api("POST", "conversations", {"kind": "group", "title": "Gone fishing", "member_ids": [carol_id]},
                       token=admin)["id"]
    server.api("POST", f"conversations/{group}/messages", {"client_id": "m1", "text": "Carol, are you in?"}, token=admin)
    server.api("DELETE", f"conversations/{group}/members/{carol_id}", token=admin)

    carol.login()

    expect(carol.page.locator(".chat-item", has_text="Gone fishing")).to_contain_text("removed Carol Removed")
    deadline = time.monotonic() + EXPECT_TIMEOUT / 1000
    while server.api("GET", f"conversations/{group}", token=removed)["delivered_seq"] < 3:  # the notice
        assert time.monotonic() < deadline, "the page did not acknowledge the removed group's messages"
        time.sleep(0.1)
    # Acknowledged in full, a receipt for it again changes nothing and is no error.
    assert server.api("POST", f"conversations/{group}/delivered", {"seq": 3}, token=removed) is None
    assert carol.console_errors == []


def test_a_group_i_left_stays_read_only_after_a_reload_until_i_delete_it(people, server, shot):
    """WhatsApp keeps a group one left in the list, readable up to one's going, with no composer,
    until one deletes it. Here it vanished at the next reload."""
    alice = people("Alice Host", register=False).register_by_api()
    bob = people("Bob Leaver")
    group_by_api(server, alice, "Book club", bob)
    group = next(c["id"] for c in server.api("GET", "conversations", token=alice.token()) if c["title"] == "Book club")
    server.api("POST", f"conversations/{group}/messages", {"client_id": "b1", "text": "Chapter 3 tonight"},
               token=alice.token())
    page = bob.page
    open_chat(bob, "Book club")
    expect(bubble(page, "Chapter 3 tonight")).to_be_visible()

    page.get_by_role("button", name="Conversation info").click()
    page.locator("#info-drawer").get_by_role("button", name="Exit group").click()
    notice = page.locator("#composer-notice")
    expect(notice).to_contain_text("You're no longer a participant in this group.")
    expect(composer(page)).to_be_hidden()
    server.api("POST", f"conversations/{group}/messages", {"client_id": "b2", "text": "Without Bob now"},
               token=alice.token())

    page.reload()
    item = page.locator(".chat-item", has_text="Book club")
    expect(item).to_contain_text("Bob Leaver left")
    expect(item.locator(".unread-badge")).to_have_count(0)  # he read up to his going before he went
    open_chat(bob, "Book club")
    expect(bubble(page, "Chapter 3 tonight")).to_be_visible()
    expect(page.locator("#messages .msg-system").last).to_have_text("Bob Leaver left")
    expect(page.locator("#conversation-subtitle")).to_have_text("You are no longer a participant")
    expect(notice).to_contain_text("You're no longer a participant in this group.")
    expect(composer(page)).to_be_hidden()
    assert "Without Bob now" not in page.locator("#messages").inner_text()
    shot(page, "left-group")

    notice.get_by_role("button", name="Delete chat").click()  # asked first: it cannot be undone
    notice.get_by_role("button", name="Cancel").click()
    expect(notice.get_by_role("button", name="Delete chat")).to_be_focused()
    expect(item).to_have_count(1)
    notice.get_by_role("button", name="Delete chat").click()
    notice.get_by_role("button", name="Delete", exact=True).click()
    expect(item).to_have_count(0)
    expect(page.locator("#chat-welcome")).to_be_visible()
    page.reload()
    expect(page.locator("#chat-list-empty")).to_be_visible()  # the list came, without it
    assert server.api("GET", "conversations", token=bob.token()) == []
    assert bob.console_errors == []


def test_a_left_group_deleted_in_one_tab_goes_from_another_at_once(people, server):
    """"Delete chat" in one tab: another tab of the same account kept listing the group (and showing
    it, open there) until its next reload or reconnect."""
    alice = people("Alice Walker", register=False).register_by_api()
    bob = people("Bob Two Tabs")
    group_by_api(server, alice, "Hiking club", bob)
    group = next(c["id"] for c in server.api("GET", "conversations", token=alice.token()) if c["title"] == "Hiking club")
    bob_id = server.api("GET", "me", token=bob.token())["id"]
    server.api("DELETE", f"conversations/{group}/members/{bob_id}", token=bob.token())  # from his phone
    first = bob.page
    expect(first.locator(".chat-item", has_text="Hiking club")).to_contain_text("Bob Two Tabs left")
    second = bob.context.new_page()
    errors = []
    second.on("pageerror", lambda exc: errors.append(str(exc)))
    second.goto(first.url.split("#")[0])
    second.locator("body[data-connection='open']").wait_for(state="attached", timeout=20_000)
    open_chat(bob, "Hiking club")
    second.locator(".chat-item", has_text="Hiking club").click()
    expect(second.locator("#conversation-title")).to_have_text("Hiking club")

    notice = first.locator("#composer-notice")
    notice.get_by_role("button", name="Delete chat").click()
    notice.get_by_role("button", name="Delete", exact=True).click()

    expect(first.locator(".chat-item", has_text="Hiking club")).to_have_count(0)
    expect(second.locator(".chat-item", has_text="Hiking club")).to_have_count(0)
    expect(second.locator("#chat-welcome")).to_be_visible()  # it was open there: closed
    expect(second.locator("#chat-list-empty")).to_be_visible()
    assert errors == [] and bob.console_errors == []


def test_the_group_info_panel_keeps_what_is_typed_there_while_messages_come_in(people, server):
    """The group info panel was rebuilt at every message and receipt in the group: a number an admin
    was typing to add someone vanished, and the keyboard focus with it. It is now rebuilt only when
    what it shows changes, and then keeps what is typed and the focus."""
    alice = people("Alice Organiser")
    bob = people("Bob Chatty", register=False).register_by_api()
    carol = people("Carol Invitee", register=False).register_by_api()
    bob_token = bob.token()
    bob_id = server.api("GET", "me", token=bob_token)["id"]
    server.api("POST", "contacts", {"phone_number": bob.phone}, token=alice.token())
    group = server.api("POST", "conversations", {"kind": "group", "title": "Trip planning", "member_ids": [bob_id]},
                       token=alice.token())["id"]
    page = alice.page
    open_chat(alice, "Trip planning")
    page.get_by_role("button", name="Conversation info").click()
    info = page.locator("#info-drawer")
    phone = info.get_by_label("Phone number")
    phone.fill(carol.phone[:6])
    phone.press_sequentially(carol.phone[6:8])

    sent = server.api("POST", f"conversations/{group}/messages", {"client_id": "chat-1", "text": "Train or car?"}, token=bob_token)
    expect(bubble(page, "Train or car?")).to_have_count(1)
    # From Alice's phone, so that the focus stays where it is here.
    server.api("POST", f"conversations/{group}/messages", {"client_id": "chat-2", "text": "Train!"}, token=alice.token())
    server.api("POST", f"conversations/{group}/read", {"seq": sent["seq"] + 1}, token=bob_token)
    expect(bubble(page, "Train!")).to_have_attribute("data-status", "read")
    expect(phone).to_have_value(carol.phone[:8])
    expect(phone).to_be_focused()

    # A change the panel shows (Bob leaves) redraws it, and what is being typed stays there too.
    server.api("DELETE", f"conversations/{group}/members/{bob_id}", token=bob_token)
    expect(info.locator(".person-list").get_by_role("listitem")).to_have_count(1)
    expect(phone).to_have_value(carol.phone[:8])
    expect(phone).to_be_focused()
    page.keyboard.type(carol.phone[8:])
    page.keyboard.press("Enter")
    expect(info.get_by_role("checkbox", name="Carol Invitee")).to_be_checked()


def test_being_removed_from_a_group_is_unread_only_until_the_group_is_opened(people, server):
    """The notice of one's removal from a group counts as unread. The page could not mark it read
    (the server refuses a read from a former member), so its badge and the "(1)" in the tab title
    stayed for good. Opening the group now clears them."""
    alice = people("Alice Remover", register=False).register_by_api()
    bob = people("Bob Removed")
    admin = alice.token()
    bob_id = server.api("GET", "me", token=bob.token())["id"]
    server.api("POST", "contacts", {"phone_number": bob.phone}, token=admin)
    direct_chat = server.api("POST", "conversations", {"kind": "direct", "phone_number": bob.phone}, token=admin)["id"]
    server.api("POST", f"conversations/{direct_chat}/messages", {"client_id": "d1", "text": "Rehearsal news"}, token=admin)
    group = server.api("POST", "conversations", {"kind": "group", "title": "Band practice", "member_ids": [bob_id]},
                       token=admin)["id"]
    page = bob.page
    direct = page.locator(".chat-item").filter(has=page.locator(".chat-item-title", has_text=re.compile("^Alice Remover$")))
    open_chat(bob, "Band practice")
    direct.click()
    expect(page.locator("#conversation-title")).to_have_text("Alice Remover")
    item = page.locator(".chat-item", has_text="Band practice")
    expect(item.locator(".unread-badge")).to_have_count(0)
    expect(page).to_have_title("messenger")

    server.api("DELETE", f"conversations/{group}/members/{bob_id}", token=admin)
    expect(item.locator(".unread-badge")).to_have_text("1")
    expect(page).to_have_title("(1) messenger")

    open_chat(bob, "Band practice")
    expect(page.locator("#messages .msg-system", has_text="removed Bob Removed")).to_be_visible()
    expect(page.get_by_text("you're no longer a participant")).to_be_visible()
    direct.click()
    expect(page.locator("#conversation-title")).to_have_text("Alice Remover")
    expect(item).to_be_visible()
    expect(item.locator(".unread-badge")).to_have_count(0)
    expect(page).to_have_title("messenger")


def info_of_a_chat_with_a_message(people, sender_name, reader_name):
    """(sender, reader, the reader's info drawer): the reader's page is open on the chat with the
    sender's "hello", and on its info drawer."""
    sender, reader = people(sender_name), people(reader_name)
    start_chat(sender, reader)
    send(sender, "hello")
    open_chat(reader, sender_name)
    reader.page.get_by_role("button", name="Conversation info").click()
    return sender, reader, reader.page.locator("#info-drawer")


def test_a_block_or_unblock_that_fails_says_why(people):
    """Blocking and unblocking failed in silence: the button just stayed as it was."""
    _, bob, info = info_of_a_chat_with_a_message(people, "Alice Unreachable", "Bob Offline")
    page = bob.page

    page.route("**/api/v1/blocks/*", lambda route: route.abort())
    info.get_by_role("button", name="Block Alice Unreachable", exact=True).click()
    expect(info.get_by_role("alert")).to_have_text("The server cannot be reached.")
    expect(info.get_by_role("button", name="Block Alice Unreachable", exact=True)).to_be_visible()
    expect(page.locator("#composer")).to_be_visible()
    page.unroute("**/api/v1/blocks/*")
    info.get_by_role("button", name="Block Alice Unreachable", exact=True).click()
    expect(info.get_by_role("button", name="Unblock Alice Unreachable", exact=True)).to_be_visible()
    expect(info.get_by_role("alert")).to_have_count(0)

    notice = page.locator("#composer-notice")
    page.route("**/api/v1/blocks/*", lambda route: route.abort())
    notice.get_by_role("button", name="Unblock").click()
    expect(notice.get_by_role("alert")).to_have_text("The server cannot be reached.")
    expect(notice).to_contain_text("You blocked Alice Unreachable")
    page.unroute("**/api/v1/blocks/*")
    notice.get_by_role("button", name="Unblock").click()
    expect(page.locator("#composer")).to_be_visible()
    expect(info.get_by_role("button", name="Block Alice Unreachable", exact=True)).to_be_visible()


def test_block_unblock_and_retry_from_the_keyboard_keep_the_focus(people, server):
    """Block, Unblock and Retry each replace the button pressed: the focus fell to the page's body,
    and a keyboard user had to find their way back. It now goes to the button that takes its place,
    or, for Retry and the composer's Unblock, to the composer."""
    alice, bob, info = info_of_a_chat_with_a_message(people, "Alice Keyboard", "Bob Keyboard")
    page = bob.page

    info.get_by_role("button", name="Block Alice Keyboard", exact=True).focus()
    page.keyboard.press("Enter")
    expect(info.get_by_role("button", name="Unblock Alice Keyboard", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(info.get_by_role("button", name="Block Alice Keyboard", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(info.get_by_role("button", name="Unblock Alice Keyboard", exact=True)).to_be_focused()

    send(alice, "still there?")
    failed = bubble(alice.page, "still there?")
    expect(failed).to_have_attribute("data-status", "failed")

    page.locator("#composer-notice").get_by_role("button", name="Unblock").focus()
    page.keyboard.press("Enter")
    expect(composer(page)).to_be_focused()

    failed.get_by_role("button", name="Retry").focus()
    alice.page.keyboard.press("Enter")
    expect(composer(alice.page)).to_be_focused()
    expect(failed).to_have_count(1)
    expect(failed).to_have_attribute("data-status", re.compile("sent|delivered|read"))


def test_a_message_a_moderator_takes_down_goes_from_every_screen_and_keeps_its_place(people, server):
    alice, bob = people("Alice Seller"), people("Bob Buyer")
    start_chat(alice, bob)
    for text in ("hello Bob", "buy cheap watches at example.com", "see you"):
        send(alice, text)
    open_chat(bob, "Alice Seller")
    expect(bubble(bob.page, "see you")).to_have_count(1)
    olga = people("Olga Operator", register=False).register_by_api()
    server.manage("shell", "-c", "from storage.models import User; "
                  f"User.objects.filter(phone_number='{olga.phone}').update(is_staff=True, is_superuser=True)")
    olga.login()

    # The operator finds the message in the admin and takes it down.
    olga.page.goto(server.url + "/admin/storage/message/?q=cheap+watches")
    olga.page.locator("input[name=_selected_action]").check()
    olga.page.locator("select[name=action]").select_option("take_down")
    olga.page.get_by_role("button", name="Go").click()
    expect(olga.page.get_by_text("1 message(s) taken down.")).to_be_visible()

    # Both screens lose it at once, in its place, and say why; a reload agrees.
    def shows_it_removed(page):
        expect(page.locator("#messages .msg-removed")).to_have_text("This message was removed by a moderator")
        expect(page.locator("#messages .system-text", has_text="A message was removed by a moderator.")).to_have_count(1)
        assert texts(page) == ["hello Bob", "This message was removed by a moderator", "see you"]

    shows_it_removed(alice.page)
    shows_it_removed(bob.page)
    bob.page.reload()
    expect(bubble(bob.page, "see you")).to_have_count(1)
    shows_it_removed(bob.page)
    assert alice.dialogs == [] and bob.dialogs == [] and csp_violations(olga) == []


def test_deleting_a_message_for_everyone_after_confirming_it(people, server):
    alice, bob = people("Alice Hasty"), people("Bob Reader")
    start_chat(alice, bob)
    for text in ("hi Bob", "the wrong photo caption", "see you"):
        send(alice, text)
    open_chat(bob, "Alice Hasty")
    expect(bubble(bob.page, "see you")).to_have_count(1)
    expect(bubble(bob.page, "hi Bob").get_by_role("button", name="Delete message for everyone")).to_have_count(0)

    # Asked first: cancelling keeps it.
    wrong = bubble(alice.page, "the wrong photo caption")
    wrong.hover()
    wrong.get_by_role("button", name="Delete message for everyone").click()
    wrong.get_by_role("button", name="Cancel").click()
    expect(wrong.get_by_role("button", name="Delete", exact=True)).to_have_count(0)
    wrong.get_by_role("button", name="Delete message for everyone").click()
    alice.page.keyboard.press("Escape")  # so does Escape, and the chat stays open
    expect(wrong.get_by_role("button", name="Delete", exact=True)).to_have_count(0)
    expect(wrong.get_by_role("button", name="Delete message for everyone")).to_be_focused()
    expect(bubble(bob.page, "the wrong photo caption")).to_have_count(1)

    wrong.hover()
    wrong.get_by_role("button", name="Delete message for everyone").click()
    expect(wrong.get_by_role("button", name="Delete", exact=True)).to_be_focused()
    alice.page.keyboard.press("Enter")

    # Both screens show it deleted in its place, at once, with no line for the notice; the list
    # agrees; a reload too; and her own chat has nothing unread from it.
    expected = {alice: "You deleted this message", bob: "This message was deleted"}
    for person, shown in expected.items():
        expect(person.page.locator("#messages .msg-removed")).to_have_text(shown)
        assert texts(person.page) == ["hi Bob", shown, "see you"]
        expect(person.page.locator("#messages .msg-system")).to_have_count(0)
    send(alice, "sorry")
    expect(bubble(bob.page, "sorry")).to_have_count(1)
    bob.page.reload()
    expect(bubble(bob.page, "sorry")).to_have_count(1)
    assert texts(bob.page) == ["hi Bob", "This message was deleted", "see you", "sorry"]
    alice.page.reload()
    expect(alice.page.locator(".chat-item", has_text="Bob Reader")).to_be_visible()
    expect(alice.page.locator(".chat-item .unread-badge")).to_have_count(0)
    assert alice.dialogs == [] and bob.dialogs == []
    assert alice.console_errors == [] and bob.console_errors == []


def test_an_admin_makes_another_admin_who_can_then_manage_the_group(people, server):
    alice, bob = people("Alice Founder"), people("Bob Deputy")
    carol = people("Carol Guest", register=False).register_by_api()
    group_by_api(server, alice, "Choir", bob, carol)
    open_chat(alice, "Choir")
    open_chat(bob, "Choir")
    bob.page.get_by_role("button", name="Conversation info").click()
    bob_info = bob.page.locator("#info-drawer")
    expect(bob_info.get_by_role("button", name="Remove Carol Guest")).to_have_count(0)  # a member, not admin

    alice.page.get_by_role("button", name="Conversation info").click()
    alice.page.locator("#info-drawer").get_by_role("button", name="Make Bob Deputy group admin").click()

    # Everyone is told, and Bob's own page gives him an admin's controls at once.
    for page in (alice.page, bob.page):
        expect(page.locator("#messages .msg-system", has_text="Alice Founder made Bob Deputy an admin")).to_be_visible()
    bob_info.get_by_role("button", name="Remove Carol Guest").click()
    expect(alice.page.locator("#messages .msg-system", has_text="Bob Deputy removed Carol Guest")).to_be_visible()
    expect(alice.page.locator("#info-drawer").get_by_role("button", name="Dismiss Bob Deputy as group admin")).to_be_visible()
    assert csp_violations(alice) == [] and csp_violations(bob) == []


def test_typing_shows_at_once_after_a_send_and_in_the_chat_switched_to(people):
    alice, bob, carol = people("Alice Typist"), people("Bob Reader"), people("Carol Reader")
    start_chat(alice, carol)
    send(alice, "hi Carol")
    start_chat(alice, bob)
    open_chat(carol, "Alice Typist")

    # A message, then at once the next: the message ended "typing…" on Bob's side; the next words
    # start it again (they were held back for seconds behind the typing of the first).
    send(alice, "first")
    open_chat(bob, "Alice Typist")
    expect(bubble(bob.page, "first")).to_have_count(1)
    expect(bob.page.locator("#conversation-subtitle")).not_to_have_text("typing…")
    composer(alice.page).press_sequentially("and", delay=20)
    expect(bob.page.locator("#conversation-subtitle")).to_have_text("typing…")

    # Straight over to Carol's chat: typing there is news to Carol, whatever was typed to Bob.
    open_chat(alice, "Carol Reader")
    composer(alice.page).press_sequentially("yo", delay=20)
    expect(carol.page.locator("#conversation-subtitle")).to_have_text("typing…")


def test_a_contact_saved_or_removed_under_a_name_renames_the_open_chat_at_once(people):
    alice, bob = people("Alice Namer"), people("Bob Plain")
    start_chat(alice, bob)
    send(alice, "hello")
    page = alice.page

    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Phone number").fill(bob.phone)
    page.get_by_label("Name (optional, for your contacts)").fill("Bobby Saved")
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_role("button", name="Remove contact Bobby Saved")).to_be_visible()
    # The list and the chat still open behind the drawer both say the new name.
    expect(page.locator(".chat-item .chat-item-title")).to_have_text(["Bobby Saved"])
    expect(page.locator("#conversation-title")).to_have_text("Bobby Saved")
    expect(page.locator("#messages .history-start")).to_have_text("This is the start of your chat with Bobby Saved.")

    page.get_by_role("button", name="Remove contact Bobby Saved").click()
    expect(page.locator("#conversation-title")).to_have_text("Bob Plain")
    expect(page.locator(".chat-item .chat-item-title")).to_have_text(["Bob Plain"])


def test_the_info_panel_of_a_group_i_left_does_not_list_me_as_a_member(people):
    alice, bob, carol = people("Alice Host"), people("Bob Leaver"), people("Carol Stayer")
    start_chat(alice, bob)
    start_chat(alice, carol)
    page = alice.page
    page.get_by_role("button", name="New group").click()
    page.get_by_label("Group name").fill("Book club")
    page.get_by_role("checkbox", name="Bob Leaver").check()
    page.get_by_role("checkbox", name="Carol Stayer").check()
    page.get_by_role("button", name="Create group").click()
    expect(page.locator("#conversation-title")).to_have_text("Book club")

    open_chat(bob, "Book club")
    bob.page.get_by_role("button", name="Conversation info").click()
    members = bob.page.get_by_role("list", name="Members").get_by_role("listitem")
    expect(members).to_have_count(3)
    bob.page.get_by_role("button", name="Exit group").click()
    expect(bob.page.locator("#conversation-subtitle")).to_have_text("You are no longer a participant")
    # The panel, still open, lists those still in the group: not Bob, "(you)".
    expect(members).to_have_count(2)
    expect(members.filter(has_text="(you)")).to_have_count(0)
    expect(bob.page.locator("#info-drawer")).to_contain_text("2 members")
    expect(bob.page.get_by_role("button", name="Exit group")).to_have_count(0)


def test_a_new_display_name_shows_its_initials_in_the_profile_panel_at_once(people):
    ann = people("Ann Oldname")
    page = ann.page
    page.get_by_role("button", name="Profile and settings").click()
    card = page.locator("#side-drawer .profile-card .avatar")
    expect(card).to_have_text("AO")
    page.get_by_label("Display name").fill("Zoe Newname")
    page.get_by_role("button", name="Save", exact=True).click()
    profile = page.locator("#side-drawer form", has=page.get_by_label("Display name"))
    expect(profile.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_role("button", name="Profile and settings")).to_have_text("ZN")
    expect(card).to_have_text("ZN")


def test_a_chat_search_that_finds_nothing_says_so(people):
    alice, bob = people("Alice Seeker"), people("Bob Found")
    start_chat(alice, bob)
    page = alice.page
    search = page.get_by_label("Search chats")
    search.fill("bob")
    expect(page.locator(".chat-item")).to_have_count(1)
    expect(page.get_by_text("No chats match your search.")).to_be_hidden()
    search.fill("nobody like this")
    expect(page.locator(".chat-item")).to_have_count(0)
    expect(page.get_by_text("No chats match your search.")).to_be_visible()
    search.fill("")
    expect(page.locator(".chat-item")).to_have_count(1)
    expect(page.get_by_text("No chats match your search.")).to_be_hidden()


def test_a_message_that_failed_stays_on_my_side_of_the_chat(people, server):
    alice = people("Alice Lefty")
    bob = people("Bob Wall", register=False).register_by_api()
    start_chat(alice, bob)
    send(alice, "hello there")
    sent = bubble(alice.page, "hello there")
    expect(sent).to_have_attribute("data-status", re.compile("sent|delivered"))
    alice_id = server.api("GET", "me", token=alice.token())["id"]
    server.api("POST", f"blocks/{alice_id}", token=bob.token())

    send(alice, "still there?")
    failed = bubble(alice.page, "still there?")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    # Right-aligned like every message of mine, not pulled to the middle by its Retry line.
    right = lambda row: row.locator(".bubble").bounding_box()["x"] + row.locator(".bubble").bounding_box()["width"]  # noqa: E731
    assert abs(right(failed) - right(sent)) < 2


def test_new_chat_with_no_number_typed_asks_for_one_in_plain_words(people):
    ann = people("Ann Hasty")
    page = ann.page
    page.get_by_role("button", name="New chat").click()
    page.get_by_role("button", name="Start chat").click()
    expect(page.get_by_role("alert")).to_have_text("Type a phone number first.")
    expect(page.get_by_label("Phone number")).to_be_focused()
    page.get_by_label("Name (optional, for your contacts)").fill("Someone")
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_role("alert")).to_have_text("Type a phone number first.")
    expect(page.get_by_role("alert")).not_to_contain_text("phone_number")


def test_a_new_display_name_shows_on_the_other_side_without_a_reload(people):
    alice, bob = people("Alice Oldname"), people("Bob Watcher")
    start_chat(alice, bob)
    send(alice, "hello")
    open_chat(bob, "Alice Oldname")

    alice.page.get_by_role("button", name="Profile and settings").click()
    alice.page.get_by_label("Display name").fill("Alice Newname")
    alice.page.get_by_role("button", name="Save").click()

    expect(bob.page.locator("#conversation-title")).to_have_text("Alice Newname")
    expect(bob.page.locator(".chat-item", has_text="Alice Newname")).to_be_visible()


def test_a_lost_phone_is_logged_out_from_the_browser_and_a_new_password_keeps_the_page(people, server):
    alice, bob = people("Alice Careful"), people("Bob Friend")
    phone_token = server.api("POST", "auth/login", {"phone_number": alice.phone, "password": PASSWORD,
                                                    "device_name": "Pixel 9"})["token"]
    tablet_token = server.api("POST", "auth/login", {"phone_number": alice.phone, "password": PASSWORD,
                                                     "device_name": "Tablet"})["token"]
    page = alice.page
    page.get_by_role("button", name="Profile and settings").click()
    devices = page.get_by_role("list", name="Devices")
    expect(devices.get_by_role("listitem")).to_have_count(2)

    devices.get_by_role("button", name="Log out Pixel 9").click()
    expect(devices.get_by_role("listitem")).to_have_count(1)
    with pytest.raises(urllib.error.HTTPError):  # the lost phone's token no longer works
        server.api("GET", "me", token=phone_token)

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("The current password is wrong.")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").filter(has_text="Password changed. 1 device logged out.")).to_be_visible()
    expect(devices.get_by_text("No phones or apps are logged in.")).to_be_visible()
    with pytest.raises(urllib.error.HTTPError):
        server.api("GET", "me", token=tablet_token)

    # This page is still logged in and chatting.
    page.get_by_role("button", name="Back").click()
    start_chat(alice, bob)
    send(alice, "changed my password")
    expect(bubble(page, "changed my password")).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(bob.page.locator(".chat-item", has_text="Alice Careful")).to_contain_text("changed my password")


def test_a_groups_admin_deletes_a_members_message(people, server):
    alice, bob = people("Alice Keeper"), people("Bob Spammer")
    group_by_api(server, alice, "Quiet Room", bob)
    open_chat(alice, "Quiet Room")
    open_chat(bob, "Quiet Room")
    send(bob, "cheap watches here")
    spam = bubble(alice.page, "cheap watches here")
    expect(spam).to_have_count(1)
    expect(bubble(bob.page, "cheap watches here").get_by_role("button", name="Delete message for everyone")).to_have_count(1)

    spam.hover()
    spam.get_by_role("button", name="Delete message for everyone").click()
    spam.get_by_role("button", name="Delete", exact=True).click()

    expect(alice.page.locator("#messages .msg-removed")).to_have_text("You deleted this message")
    expect(bob.page.locator("#messages .msg-removed")).to_have_text("This message was deleted by admin Alice Keeper")
    bob.page.reload()
    expect(bob.page.locator(".chat-item", has_text="Quiet Room")).to_contain_text("This message was deleted by admin Alice Keeper")
    assert alice.console_errors == [] and bob.console_errors == []


def test_a_message_too_old_to_delete_says_why_where_it_is(people, server):
    alice, bob = people("Alice Late"), people("Bob Patient")
    start_chat(alice, bob)
    send(alice, "an old promise")
    row = bubble(alice.page, "an old promise")
    expect(row).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    server.manage("shell", "-c", "from datetime import timedelta; from django.utils import timezone; "
                  "from storage.models import Message; Message.objects.filter(text='an old promise')"
                  ".update(created_at=timezone.now() - timedelta(days=3))")

    row.hover()
    row.get_by_role("button", name="Delete message for everyone").click()
    row.get_by_role("button", name="Delete", exact=True).click()

    expect(row.get_by_role("alert")).to_have_text("A message can be deleted for everyone only within 48 hours of sending it.")
    expect(row.locator(".msg-text")).to_have_text("an old promise")


def test_a_new_password_sends_another_browser_in_the_account_to_the_login_page_at_once(people, server):
    """Someone else is logged in to Alice's account in another browser: when she sets a new
    password, that browser's page stops and goes to the login page at once (not at its next
    action or within the minute), while hers stays and goes on chatting."""
    alice, bob = people("Alice Locksmith"), people("Bob Witness")
    intruder = people("Intruder", register=False)
    intruder.phone = alice.phone
    intruder.login()
    start_chat(alice, bob)
    send(alice, "hello Bob")
    expect(intruder.page.locator(".chat-item", has_text="Bob Witness")).to_contain_text("hello Bob")

    page = alice.page
    page.get_by_role("button", name="Profile and settings").click()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()

    expect(page.get_by_role("status").filter(has_text="Password changed.")).to_be_visible()
    expect(intruder.page).to_have_url(re.compile(r"/login/"), timeout=5_000)
    page.get_by_role("button", name="Back").click()
    send(alice, "only Bob and I read this")
    expect(bob.page.locator(".chat-item", has_text="Alice Locksmith")).to_contain_text("only Bob and I read this")
    expect(page).to_have_url(re.compile(r"/#chat-\d+$"))
