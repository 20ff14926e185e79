"""Forwarding in the browser: Forward beside a bubble asks (in a dialog) which chats to send it on
to; the copy goes as mine, marked "Forwarded" on every screen and after a reload, and with one chat
chosen that chat opens. Escape or Cancel leaves everything as it was."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, open_chat, send, start_chat, texts  # noqa: F401

pytestmark = pytest.mark.browser


def ask_forward(page, text):
    row = bubble(page, text)
    row.hover()
    row.get_by_role("button", name="Forward message").click()
    dialog = page.get_by_role("dialog", name="Forward message to")
    expect(dialog).to_be_visible()
    return dialog


def test_forward_a_message_to_another_chat_marked_forwarded_there_and_after_a_reload(people):
    alice, bob, carol = people("Alice Sharer"), people("Bob Source"), people("Carol Target")
    start_chat(alice, carol)
    send(alice, "hi Carol")
    start_chat(bob, alice)
    send(bob, "The door code is 4711")
    open_chat(alice, "Bob Source")
    expect(bubble(alice.page, "The door code is 4711")).to_have_count(1)

    # Cancelled: nothing goes, the chat stays open.
    dialog = ask_forward(alice.page, "The door code is 4711")
    alice.page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(alice.page.locator("#conversation-title")).to_have_text("Bob Source")
    dialog = ask_forward(alice.page, "The door code is 4711")
    dialog.get_by_role("button", name="Forward", exact=True).click()
    expect(dialog.get_by_role("alert")).to_have_text("Choose a chat to forward it to.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(bubble(carol.page, "The door code is 4711")).to_have_count(0)

    dialog = ask_forward(alice.page, "The door code is 4711")
    dialog.get_by_label("Carol Target").check()
    dialog.get_by_role("button", name="Forward", exact=True).click()

    # Sent as hers, marked, and the chat it went to opens.
    expect(dialog).to_have_count(0)
    expect(alice.page.locator("#conversation-title")).to_have_text("Carol Target")
    mine = bubble(alice.page, "The door code is 4711")
    expect(mine.locator(".msg-forwarded")).to_have_text("Forwarded")
    expect(mine).to_have_class(re.compile("msg-out"))
    open_chat(carol, "Alice Sharer")
    theirs = bubble(carol.page, "The door code is 4711")
    expect(theirs.locator(".msg-forwarded")).to_have_text("Forwarded")
    assert texts(carol.page) == ["hi Carol", "The door code is 4711"]
    carol.page.reload()
    expect(bubble(carol.page, "The door code is 4711").locator(".msg-forwarded")).to_have_text("Forwarded")
    # Bob's original is not marked, on his screen nor on hers.
    expect(bubble(bob.page, "The door code is 4711").locator(".msg-forwarded")).to_have_count(0)
    open_chat(alice, "Bob Source")
    expect(bubble(alice.page, "The door code is 4711").locator(".msg-forwarded")).to_have_count(0)
    assert alice.console_errors == [] and carol.console_errors == [] and alice.dialogs == []
