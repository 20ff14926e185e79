"""Drafts: what is typed in a chat and not sent survives a reload of the page, shows in the chat
list, goes once sent, stays the author's own on a shared browser and goes with the logout, or with
the session ended elsewhere (not with a dropped connection)."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.test_chat_ui import _patience, bubble, composer, csp_violations, open_chat, send, start_chat  # noqa: F401

pytestmark = pytest.mark.browser


def preview(page, title):
    return page.locator(".chat-item", has_text=title).locator(".chat-item-preview")


def reload(person):
    person.page.reload()
    person.wait_until_connected()


def log_in_as(person, phone, server):
    """Log in on `person`'s browser as whoever has `phone`."""
    page = person.page
    page.goto(server.url + "/login/")
    page.get_by_label("Phone number").fill(phone)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url + "/")
    person.wait_until_connected()


def test_a_draft_is_kept_across_reloads_shown_in_the_list_and_gone_once_sent(people):
    alice, bob, carol = people("Alice Drafter"), people("Bob Draftee"), people("Carol Elsewhere")
    start_chat(alice, bob)
    send(alice, "hello Bob")
    start_chat(alice, carol)
    send(alice, "hello Carol")
    page = alice.page

    open_chat(alice, "Bob Draftee")
    composer(page).fill("half a thought\nand its second line")
    open_chat(alice, "Carol Elsewhere")
    expect(preview(page, "Bob Draftee")).to_have_text("Draft: half a thought and its second line")
    expect(preview(page, "Carol Elsewhere")).to_contain_text("hello Carol")

    reload(alice)  # Carol's chat, open before, opens again; Bob's keeps its draft
    expect(page.locator("#conversation-title")).to_have_text("Carol Elsewhere")
    expect(preview(page, "Bob Draftee")).to_have_text("Draft: half a thought and its second line")
    open_chat(alice, "Bob Draftee")
    expect(composer(page)).to_have_value("half a thought\nand its second line")
    # Typed and not left: reloading at once keeps it too.
    composer(page).press("End")
    composer(page).press_sequentially(", and more", delay=10)
    reload(alice)
    expect(composer(page)).to_have_value("half a thought\nand its second line, and more")

    composer(page).press("Enter")
    expect(bubble(page, "and more")).to_have_count(1)
    expect(composer(page)).to_have_value("")
    open_chat(alice, "Carol Elsewhere")
    expect(preview(page, "Bob Draftee")).to_contain_text("and more")
    expect(preview(page, "Bob Draftee")).not_to_contain_text("Draft:")
    reload(alice)
    expect(preview(page, "Bob Draftee")).not_to_contain_text("Draft:")
    open_chat(alice, "Bob Draftee")
    expect(composer(page)).to_have_value("")
    expect(bob.page.locator(".chat-item", has_text="Alice Drafter")).to_contain_text("and more")
    assert csp_violations(alice) == [] and alice.console_errors == []


def test_a_draft_is_its_authors_alone_on_a_shared_browser_and_logging_out_removes_it(people, server):
    alice, bob = people("Alice Sharer"), people("Bob Borrower")
    start_chat(alice, bob)
    send(alice, "hi Bob")
    page = alice.page
    composer(page).fill("not for Bob's eyes")

    # Alice's session ends without a logout (her cookies cleared), and Bob logs in on her browser:
    # the same conversation, another account, no draft.
    alice.context.clear_cookies()
    log_in_as(alice, bob.phone, server)
    expect(preview(page, "Alice Sharer")).to_contain_text("hi Bob")
    expect(preview(page, "Alice Sharer")).not_to_contain_text("Draft:")
    open_chat(alice, "Alice Sharer")
    expect(composer(page)).to_have_value("")

    # Alice back on her browser: her draft waited for her.
    alice.context.clear_cookies()
    log_in_as(alice, alice.phone, server)
    expect(preview(page, "Bob Borrower")).to_have_text("Draft: not for Bob's eyes")

    # Logging out takes it away.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    log_in_as(alice, alice.phone, server)
    expect(preview(page, "Bob Borrower")).to_contain_text("hi Bob")
    expect(preview(page, "Bob Borrower")).not_to_contain_text("Draft:")
    open_chat(alice, "Bob Borrower")
    expect(composer(page)).to_have_value("")


def test_a_draft_sent_in_one_tab_is_not_kept_in_another(people):
    """Two tabs of the same browser: the draft the first sends is no longer a draft in the second,
    which would otherwise show it in its list and put it back in the composer there."""
    alice, bob, carol = people("Alice Two Tabs"), people("Bob Tabbed"), people("Carol Tabbed")
    start_chat(alice, bob)
    send(alice, "hello Bob")
    start_chat(alice, carol)
    send(alice, "hello Carol")
    first = alice.page
    open_chat(alice, "Bob Tabbed")
    composer(first).fill("written in the first tab")
    second = alice.context.new_page()
    second.goto(first.url.split("#")[0])
    expect(preview(second, "Bob Tabbed")).to_have_text("Draft: written in the first tab")
    # Its socket open before the send: the page reads the list, then connects, and what this
    # account sends before that connect is no catch-up of this page's (its own message).
    second.locator("body[data-connection='open']").wait_for(state="attached", timeout=20_000)

    composer(first).press("Enter")

    expect(bubble(second, "written in the first tab")).to_have_count(0)  # no chat is open there
    expect(preview(second, "Bob Tabbed")).to_contain_text("written in the first tab")
    expect(preview(second, "Bob Tabbed")).not_to_contain_text("Draft:")
    second.locator(".chat-item", has_text="Bob Tabbed").click()
    expect(composer(second)).to_have_value("")


def stored_drafts(page) -> list[str]:
    """The drafts this browser keeps (drafts.js), whoever's."""
    return page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('messenger.draft.'))"
                         ".map((k) => localStorage.getItem(k))")


def test_a_session_ended_elsewhere_takes_the_drafts_with_it_but_a_dropped_connection_does_not(people, server):
    """Alice writes on a shared computer and walks away without logging out. Losing the network
    there ends nothing: the draft stays. Then, from her phone, she sets a new password, which ends
    that browser's session: its page goes to the login page, and her draft is no longer in the
    browser for the next person at that computer to read (with its developer tools)."""
    alice, bob = people("Alice Walks Away"), people("Bob Nearby")
    start_chat(alice, bob)
    send(alice, "see you later")
    page = alice.page
    composer(page).fill("the door code is 4711")
    assert stored_drafts(page) == ["the door code is 4711"]

    alice.context.set_offline(True)  # the page closes its socket and waits for the network
    page.locator("body[data-connection='waiting']").wait_for(state="attached", timeout=10_000)
    alice.context.set_offline(False)
    alice.wait_until_connected()
    assert stored_drafts(page) == ["the door code is 4711"]
    expect(composer(page)).to_have_value("the door code is 4711")

    server.api("POST", "me/password", {"current_password": PASSWORD, "new_password": "a new passphrase, from my phone"},
               token=alice.token())

    expect(page).to_have_url(re.compile(r"/login/"), timeout=10_000)
    assert stored_drafts(page) == []


def test_a_session_that_ended_while_the_page_loaded_takes_the_drafts_with_it(people, server):
    """Alice's session ends (logged out from her phone) just as her page is opening: its first
    request is refused as not logged in, and the page goes to the login page without her drafts."""
    alice, bob = people("Alice Late Start"), people("Bob Waiting")
    start_chat(alice, bob)
    send(alice, "hello")
    page = alice.page
    composer(page).fill("half a sentence")
    token = alice.token()

    def logged_out_meanwhile(route):
        server.api("POST", "me/password", {"current_password": PASSWORD, "new_password": "another new passphrase"},
                   token=token)
        route.continue_()

    page.route("**/api/v1/conversations", logged_out_meanwhile)
    page.reload()

    expect(page).to_have_url(re.compile(r"/login/"), timeout=10_000)
    assert stored_drafts(page) == []
