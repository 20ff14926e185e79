"""Replying to a message in the browser: the Reply button beside a bubble, the bar above the
composer that says what is quoted (cancelled with its x or Escape), the quote above the reply on
both sides and after a reload, and a click on the quote that goes to the original."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, composer, open_chat, send, start_chat, texts  # noqa: F401

pytestmark = pytest.mark.browser


def reply_bar(page):
    return page.locator("#reply-bar")


def start_reply(page, text):
    row = bubble(page, text)
    row.hover()
    row.get_by_role("button", name="Reply to message").click()


def quote_of(row):
    return row.locator(".msg-quote")


def test_reply_to_a_message_and_see_the_quote_on_both_sides_and_after_a_reload(people):
    alice, bob = people("Alice Asker"), people("Bob Answerer")
    start_chat(alice, bob)
    send(alice, "lunch at noon?")
    send(alice, "or at one?")
    open_chat(bob, "Alice Asker")
    expect(bubble(bob.page, "or at one?")).to_have_count(1)

    start_reply(bob.page, "lunch at noon?")
    bar = reply_bar(bob.page)
    expect(bar).to_be_visible()
    expect(bar.locator(".quote-author")).to_have_text("Alice Asker")
    expect(bar.locator(".quote-text")).to_have_text("lunch at noon?")
    expect(composer(bob.page)).to_be_focused()
    send(bob, "noon works")

    expect(bar).to_be_hidden()
    mine = bubble(bob.page, "noon works")
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    expect(quote_of(mine).locator(".quote-author")).to_have_text("Alice Asker")
    expect(quote_of(mine).locator(".quote-text")).to_have_text("lunch at noon?")
    theirs = bubble(alice.page, "noon works")
    expect(quote_of(theirs).locator(".quote-author")).to_have_text("You")
    expect(quote_of(theirs).locator(".quote-text")).to_have_text("lunch at noon?")
    # The quote is no message of its own: the chat still has each text once.
    assert texts(alice.page) == ["lunch at noon?", "or at one?", "noon works"]

    # The next message quotes nothing.
    send(bob, "see you")
    expect(bubble(alice.page, "see you")).to_have_count(1)
    expect(quote_of(bubble(alice.page, "see you"))).to_have_count(0)

    for person in (alice, bob):
        person.page.reload()
        expect(bubble(person.page, "see you")).to_have_count(1)
        expect(quote_of(bubble(person.page, "noon works")).locator(".quote-text")).to_have_text("lunch at noon?")
    assert alice.console_errors == [] and bob.console_errors == []


def test_a_reply_is_cancelled_with_its_x_or_escape_and_reached_from_the_keyboard(people):
    alice, bob = people("Alice Changer"), people("Bob Mind")
    start_chat(alice, bob)
    send(alice, "pizza or pasta?")
    open_chat(bob, "Alice Changer")
    page = bob.page

    start_reply(page, "pizza or pasta?")
    expect(reply_bar(page)).to_be_visible()
    page.get_by_role("button", name="Cancel reply").click()
    expect(reply_bar(page)).to_be_hidden()
    expect(composer(page)).to_be_focused()

    # From the keyboard: the Reply button is a button in the row; Escape cancels, the chat stays open.
    reply_button = bubble(page, "pizza or pasta?").get_by_role("button", name="Reply to message")
    reply_button.focus()
    expect(reply_button).to_be_visible()
    page.keyboard.press("Enter")
    expect(reply_bar(page)).to_be_visible()
    composer(page).fill("hmm")
    page.keyboard.press("Escape")
    expect(reply_bar(page)).to_be_hidden()
    expect(page.locator("#conversation-title")).to_have_text("Alice Changer")
    expect(composer(page)).to_have_value("hmm")

    composer(page).press("Enter")
    expect(bubble(alice.page, "hmm")).to_have_count(1)
    expect(quote_of(bubble(alice.page, "hmm"))).to_have_count(0)
    expect(quote_of(bubble(page, "hmm"))).to_have_count(0)


def test_a_quote_of_a_message_not_loaded_shows_once_fetched_and_a_click_goes_back_to_it(people, server):
    alice = people("Alice Scroller", register=False).register_by_api()
    bob = people("Bob Archivist", register=False).register_by_api()
    token = bob.token()
    conversation = server.api("POST", "conversations", {"kind": "direct", "phone_number": alice.phone}, token=token)["id"]
    server.api("POST", f"conversations/{conversation}/messages", {"client_id": "q-1", "text": "the very first word"}, token=token)
    for n in range(2, 121):
        server.api("POST", f"conversations/{conversation}/messages", {"client_id": f"q-{n}", "text": f"filler {n}"}, token=token)
    server.api("POST", f"conversations/{conversation}/messages",
               {"client_id": "q-reply", "text": "remember this?", "reply_to": 1}, token=token)

    alice.login()
    page = alice.page
    # Her page is sent all of it at connect (catch-up) and acknowledges it; reloaded, it holds only
    # the newest page of the chat it opens.
    expect(page.locator(".chat-item", has_text="Bob Archivist")).to_contain_text("remember this?")
    for _ in range(100):
        alice_member = next(m for m in server.api("GET", f"conversations/{conversation}", token=token)["members"]
                            if m["user"]["phone_number"] == alice.phone)
        if alice_member["delivered_seq"] == 121:
            break
        page.wait_for_timeout(100)
    page.reload()
    alice.wait_until_connected()
    open_chat(alice, "Bob Archivist")
    reply = bubble(page, "remember this?")
    expect(quote_of(reply).locator(".quote-text")).to_have_text("the very first word")
    expect(bubble(page, "filler 72")).to_have_count(1)
    assert bubble(page, "filler 71").count() == 0 and bubble(page, "the very first word").count() == 0  # fetched for the quote only

    quote_of(reply).click()

    original = bubble(page, "the very first word")
    expect(original).to_be_in_viewport()
    expect(original).to_have_class(re.compile(r"\bmsg-highlight\b"))
    expect(original).to_be_focused()
    # History is loaded back to it in one unbroken run.
    assert texts(page) == ["the very first word", *[f"filler {n}" for n in range(2, 121)], "remember this?"]
    expect(original).not_to_have_class(re.compile(r"\bmsg-highlight\b"), timeout=5_000)

    # And back down, from a quote of a loaded message, by the keyboard.
    page.get_by_role("log", name="Conversation history").evaluate("box => { box.scrollTop = 0; }")
    alice.page.get_by_label("Message", exact=True).fill("yes!")
    expect(reply).not_to_be_in_viewport()
    quote_of(reply).focus()
    page.keyboard.press("Enter")
    expect(original).to_be_in_viewport()
    assert alice.console_errors == []


def test_a_reply_written_offline_keeps_its_quote_and_a_deleted_original_shows_deleted(people, server):
    alice, bob = people("Alice Offline"), people("Bob Steady")
    start_chat(alice, bob)
    send(alice, "a typo here")
    open_chat(bob, "Alice Offline")
    expect(bubble(bob.page, "a typo here")).to_have_count(1)
    start_reply(bob.page, "a typo here")
    send(bob, "what typo?")
    expect(quote_of(bubble(alice.page, "what typo?"))).to_have_count(1)

    # Alice replies to Bob's reply while the server is away: pending, quote and all, then sent.
    server.stop()
    expect(alice.page.locator("#connection-banner")).to_contain_text("will be sent when the connection is back")
    start_reply(alice.page, "what typo?")
    send(alice, "never mind")
    mine = bubble(alice.page, "never mind")
    expect(mine).to_have_attribute("data-status", "pending")
    expect(quote_of(mine).locator(".quote-text")).to_have_text("what typo?")
    server.start()
    expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"), timeout=20_000)
    theirs = bubble(bob.page, "never mind")
    expect(quote_of(theirs).locator(".quote-author")).to_have_text("You", timeout=20_000)
    expect(quote_of(theirs).locator(".quote-text")).to_have_text("what typo?")

    # Alice deletes the message Bob quoted: his quote says so, on both sides and after a reload.
    typo = bubble(alice.page, "a typo here")
    typo.hover()
    typo.get_by_role("button", name="Delete message for everyone").click()
    typo.get_by_role("button", name="Delete", exact=True).click()
    expect(quote_of(bubble(bob.page, "what typo?")).locator(".quote-text")).to_have_text("This message was deleted")
    expect(quote_of(bubble(alice.page, "what typo?")).locator(".quote-text")).to_have_text("You deleted this message")
    bob.page.reload()
    expect(quote_of(bubble(bob.page, "what typo?")).locator(".quote-text")).to_have_text("This message was deleted")
    # A deleted message offers no reply.
    expect(bob.page.locator("#messages .msg-removed")).to_have_count(1)
    expect(bob.page.locator("#messages .msg", has=bob.page.locator(".msg-removed"))
           .get_by_role("button", name="Reply to message")).to_have_count(0)
