"""Reacting in the browser: React beside a bubble opens six emojis; a click reacts (a click on mine
takes it away); a chip under the bubble shows the emojis and how many reacted, and says who in its
label, on both sides, live and after a reload."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, open_chat, send, start_chat  # noqa: F401

pytestmark = pytest.mark.browser


def react(page, text, emoji):
    row = bubble(page, text)
    row.hover()
    row.get_by_role("button", name="React to message").click()
    palette = row.get_by_role("group", name="Choose a reaction")
    expect(palette.get_by_role("button")).to_have_count(6)
    palette.locator(".reaction-choice", has_text=emoji).click()
    expect(palette).to_have_count(0)  # it closes


def chip(page, text):
    return bubble(page, text).locator(".msg-reactions")


def test_react_see_it_live_and_after_a_reload_change_it_and_take_it_away(people):
    alice, bob = people("Alice Joker"), people("Bob Laugher")
    start_chat(alice, bob)
    send(alice, "why did the chicken cross the road")
    open_chat(bob, "Alice Joker")
    expect(chip(bob.page, "chicken")).to_have_count(0)

    react(bob.page, "chicken", "😂")

    for person in (bob, alice):  # alice live, from the event
        expect(chip(person.page, "chicken")).to_have_text("😂1")
    expect(chip(alice.page, "chicken")).to_have_attribute("aria-label", "Reactions: 😂 Bob Laugher")
    expect(chip(bob.page, "chicken")).to_have_attribute("aria-label", "Reactions: 😂 You")

    react(alice.page, "chicken", "❤️")
    for person in (alice, bob):
        expect(chip(person.page, "chicken")).to_have_text("😂❤️2")
    for person in (alice, bob):
        person.page.reload()
        expect(chip(person.page, "chicken")).to_have_text("😂❤️2")
    expect(chip(alice.page, "chicken")).to_have_attribute("aria-label", "Reactions: 😂 Bob Laugher; ❤️ You")

    # Another emoji replaces mine; mine again takes it away.
    react(bob.page, "chicken", "😮")
    expect(chip(alice.page, "chicken")).to_have_text("😮❤️2")
    bubble(bob.page, "chicken").hover()
    bubble(bob.page, "chicken").get_by_role("button", name="React to message").click()
    expect(bubble(bob.page, "chicken").get_by_role("button", name="Remove your reaction 😮")).to_have_attribute(
        "aria-pressed", "true")
    bubble(bob.page, "chicken").get_by_role("button", name="Remove your reaction 😮").click()
    for person in (alice, bob):
        expect(chip(person.page, "chicken")).to_have_text("❤️1")
    react(alice.page, "chicken", "❤️")
    for person in (alice, bob):
        expect(chip(person.page, "chicken")).to_have_count(0)
    bob.page.reload()
    expect(bubble(bob.page, "chicken")).to_have_count(1)
    expect(chip(bob.page, "chicken")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []
