"""Editing a message in the browser: Edit beside my own bubble puts its text in the composer under an
"Editing message" bar (its x or Escape cancels, giving back what was typed before); Enter saves it,
and both sides show the new text marked "Edited", live and after a reload, in the chat list and in
the quotes of replies to it too."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, composer, open_chat, send, start_chat, texts  # noqa: F401
from tests.browser.test_replies_ui import quote_of, start_reply

pytestmark = pytest.mark.browser


def edit_bar(page):
    return page.locator("#edit-bar")


def start_edit(page, text):
    row = bubble(page, text)
    row.hover()
    row.get_by_role("button", name="Edit message").click()


def test_edit_a_message_and_see_it_edited_on_both_sides_in_the_list_in_quotes_and_after_a_reload(people):
    alice, bob = people("Alice Typo"), people("Bob Reader")
    start_chat(alice, bob)
    send(alice, "see you at 8")
    open_chat(bob, "Alice Typo")
    start_reply(bob.page, "see you at 8")
    send(bob, "ok")
    expect(bubble(alice.page, "ok")).to_have_count(1)
    # Only my own messages offer Edit.
    expect(bubble(bob.page, "see you at 8").get_by_role("button", name="Edit message")).to_have_count(0)
    expect(bubble(alice.page, "ok").get_by_role("button", name="Edit message")).to_have_count(0)

    start_edit(alice.page, "see you at 8")
    bar = edit_bar(alice.page)
    expect(bar).to_be_visible()
    expect(bar.locator(".quote-author")).to_have_text("Editing message")
    expect(bar.locator(".quote-text")).to_have_text("see you at 8")
    expect(composer(alice.page)).to_have_value("see you at 8")
    expect(composer(alice.page)).to_be_focused()
    composer(alice.page).fill("see you at 9")
    composer(alice.page).press("Enter")

    expect(bar).to_be_hidden()
    expect(composer(alice.page)).to_have_value("")
    for person in (alice, bob):
        page = person.page
        edited = bubble(page, "see you at 9")
        expect(edited.locator(".msg-edited-label")).to_have_text("Edited")
        expect(quote_of(bubble(page, "ok")).locator(".quote-text")).to_have_text("see you at 9")
        assert texts(page) == ["see you at 9", "ok"]
        expect(page.locator("#messages .msg-system")).to_have_count(0)  # the notice is not shown
        expect(page.locator("#messages .msg-edited-label")).to_have_count(1)
    # The list shows what the chat ends with, not the notice of the edit.
    expect(bob.page.locator(".chat-item", has_text="Alice Typo").locator(".preview-text")).to_have_text("ok")
    expect(alice.page.locator(".chat-item", has_text="Bob Reader").locator(".preview-text")).to_have_text("ok")

    for person in (alice, bob):
        person.page.reload()
        expect(bubble(person.page, "ok")).to_have_count(1)
        expect(bubble(person.page, "see you at 9").locator(".msg-edited-label")).to_have_text("Edited")
        expect(quote_of(bubble(person.page, "ok")).locator(".quote-text")).to_have_text("see you at 9")
        expect(bubble(person.page, "ok").locator(".msg-edited-label")).to_have_count(0)
    # Reloaded too (fetched, as the notice is the conversation's last message).
    expect(bob.page.locator(".chat-item", has_text="Alice Typo").locator(".preview-text")).to_have_text("ok")
    # Her own edit leaves her nothing unread.
    expect(alice.page.locator(".chat-item .unread-badge")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []


def test_an_edit_is_cancelled_with_escape_or_its_x_giving_back_what_was_typed(people, server):
    alice, bob = people("Alice Second"), people("Bob Thoughts")
    start_chat(alice, bob)
    send(alice, "pizza tonight?")
    open_chat(bob, "Alice Second")
    expect(bubble(bob.page, "pizza tonight?")).to_have_count(1)
    page = alice.page
    row = bubble(page, "pizza tonight?")
    expect(row).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    composer(page).fill("half-written")

    # From the keyboard: Edit is a button in the row; Escape cancels and the chat stays open.
    edit_button = row.get_by_role("button", name="Edit message")
    edit_button.focus()
    expect(edit_button).to_be_visible()
    page.keyboard.press("Enter")
    expect(edit_bar(page)).to_be_visible()
    expect(composer(page)).to_have_value("pizza tonight?")
    composer(page).fill("pasta tonight?")
    page.keyboard.press("Escape")
    expect(edit_bar(page)).to_be_hidden()
    expect(page.locator("#conversation-title")).to_have_text("Bob Thoughts")
    expect(composer(page)).to_have_value("half-written")
    expect(composer(page)).to_be_focused()

    start_edit(page, "pizza tonight?")
    page.get_by_role("button", name="Cancel editing").click()
    expect(edit_bar(page)).to_be_hidden()
    expect(composer(page)).to_have_value("half-written")
    expect(composer(page)).to_be_focused()

    # Nothing was edited anywhere, and what was typed is still a draft after a reload.
    for person in (alice, bob):
        expect(bubble(person.page, "pizza tonight?").locator(".msg-edited-label")).to_have_count(0)
    page.reload()
    open_chat(alice, "Bob Thoughts")
    expect(composer(page)).to_have_value("half-written")

    # Past the time allowed, a message offers Edit no more.
    server.manage("shell", "-c", "from datetime import timedelta; from django.utils import timezone; "
                  "from storage.models import Message; Message.objects.filter(text='pizza tonight?')"
                  ".update(created_at=timezone.now() - timedelta(minutes=16))")
    page.reload()
    open_chat(alice, "Bob Thoughts")
    row = bubble(page, "pizza tonight?")
    expect(row).to_have_count(1)
    expect(row.get_by_role("button", name="Reply to message")).to_have_count(1)
    expect(row.get_by_role("button", name="Edit message")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []


def test_edits_and_deletions_add_nothing_to_the_unread_badge_live_or_after_a_reload(people):
    alice, bob = people("Alice Changes"), people("Bob Away")
    start_chat(alice, bob)
    send(alice, "see you at 8")
    send(alice, "bring snacks")
    item = bob.page.locator(".chat-item", has_text="Alice Changes")
    expect(item.locator(".unread-badge")).to_have_text("2")

    start_edit(alice.page, "see you at 8")
    composer(alice.page).fill("see you at 9")
    composer(alice.page).press("Enter")
    expect(bubble(alice.page, "see you at 9").locator(".msg-edited-label")).to_have_text("Edited")
    snacks = bubble(alice.page, "bring snacks")
    snacks.hover()
    snacks.get_by_role("button", name="Delete message for everyone").click()
    snacks.get_by_role("button", name="Delete", exact=True).click()
    expect(alice.page.locator("#messages .msg-removed")).to_have_text("You deleted this message")

    # Bob's list has heard of both (its preview is the deleted message), and his badge still counts
    # the two lines his chat shows, not the notices of what changed in them.
    expect(item.locator(".preview-text")).to_have_text("This message was deleted")
    expect(item.locator(".unread-badge")).to_have_text("2")
    bob.page.reload()
    expect(item.locator(".preview-text")).to_have_text("This message was deleted")
    expect(item.locator(".unread-badge")).to_have_text("2")
    open_chat(bob, "Alice Changes")
    assert texts(bob.page) == ["see you at 9", "This message was deleted"]
    expect(item.locator(".unread-badge")).to_have_count(0)
    expect(alice.page.locator(".chat-item .unread-badge")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []
