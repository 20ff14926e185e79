"""Searching a chat in the browser: the header's search button opens a panel; what is typed finds the
chat's messages that contain it, newest first, the words marked; a click on one goes back to it in
the chat, loading older history as far as it needs; Escape closes the panel."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, open_chat, send, start_chat  # noqa: F401

pytestmark = pytest.mark.browser


def test_search_finds_older_messages_and_a_click_goes_back_to_one(people, server):
    alice, bob = people("Alice Finder"), people("Bob Planner")
    start_chat(bob, alice)
    send(bob, "Dinner on Friday?")
    [chat] = server.api("GET", "conversations", token=bob.token())
    for n in range(40):  # enough to scroll the match out of sight
        server.api("POST", f"conversations/{chat['id']}/messages", {"client_id": f"filler-{n}", "text": f"filler {n}"},
                   token=bob.token())
    open_chat(alice, "Bob Planner")
    send(alice, "FRIDAY works for me")
    expect(bubble(alice.page, "FRIDAY works for me")).to_have_count(1)
    expect(bubble(alice.page, "Dinner on Friday?")).not_to_be_in_viewport()

    alice.page.get_by_role("button", name="Search messages").click()
    panel = alice.page.locator("#search-drawer")
    box = panel.get_by_role("searchbox", name="Search messages in this chat")
    expect(box).to_be_focused()
    box.fill("friday")
    results = panel.get_by_role("list", name="Messages found").locator(".search-result")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_contain_text("You")
    expect(results.nth(0).locator(".search-result-text")).to_have_text("FRIDAY works for me")
    expect(results.nth(0).locator("mark")).to_have_text("FRIDAY")
    expect(results.nth(1)).to_contain_text("Bob Planner")
    expect(results.nth(1).locator("mark")).to_have_text("Friday")

    results.nth(1).click()
    found = bubble(alice.page, "Dinner on Friday?")
    expect(found).to_be_in_viewport()
    expect(found).to_have_class(re.compile("msg-highlight"))

    box.fill("no such words")
    expect(panel.get_by_role("status")).to_have_text("No messages found")
    expect(results).to_have_count(0)
    alice.page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(alice.page.locator("#conversation-title")).to_have_text("Bob Planner")
    assert alice.console_errors == []
