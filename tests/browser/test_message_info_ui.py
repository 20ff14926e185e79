"""Message info in a group, in the browser: beside my own message, who has read it, who has it on a
device and who not yet, kept up to date while it is open."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_ui import _patience, bubble, group_by_api, open_chat, send  # noqa: F401

pytestmark = pytest.mark.browser


def test_message_info_names_who_read_who_received_and_who_not_yet_live(people, server):
    alice, bob, carol = people("Alice Host"), people("Bob Busy"), people("Carol Quick")
    dave = people("Dave Offline", register=False).register_by_api()  # never online: nothing reaches him
    group_by_api(server, alice, "Team", bob, carol, dave)
    open_chat(alice, "Team")
    open_chat(carol, "Team")
    send(alice, "Meeting at 3")
    expect(bubble(carol.page, "Meeting at 3")).to_have_count(1)

    # Erin, added after it, never had it: she is in none of its lists.
    erin = people("Erin Newcomer", register=False).register_by_api()
    server.api("POST", "contacts", {"phone_number": erin.phone}, token=alice.token())
    [team] = server.api("GET", "conversations", token=alice.token())
    erin_id = server.api("GET", "me", token=erin.token())["id"]
    server.api("POST", f"conversations/{team['id']}/members", {"user_ids": [erin_id]}, token=alice.token())
    expect(alice.page.locator("#messages .msg-system", has_text="Erin Newcomer")).to_have_count(1)

    mine = bubble(alice.page, "Meeting at 3")
    mine.hover()
    mine.get_by_role("button", name="Message info").click()
    dialog = alice.page.get_by_role("dialog", name="Message info")
    expect(dialog.get_by_role("region", name="Read by")).to_contain_text("Carol Quick")
    expect(dialog.get_by_role("region", name="Delivered to")).to_contain_text("Bob Busy")  # his page holds it
    expect(dialog.get_by_role("region", name="Not delivered yet")).to_contain_text("Dave Offline")

    expect(dialog).not_to_contain_text("Erin Newcomer")
    open_chat(bob, "Team")  # he reads it: the open dialog follows
    read_by = dialog.get_by_role("region", name="Read by")
    expect(read_by.get_by_role("heading")).to_have_text("Read by (2)")
    expect(read_by.locator(".message-info-name")).to_have_text(["Bob Busy", "Carol Quick"])
    expect(dialog.get_by_role("region", name="Delivered to")).to_have_count(0)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    # Not offered beside others' messages, nor in a direct chat (the ticks say it there).
    expect(bubble(carol.page, "Meeting at 3").get_by_role("button", name="Message info")).to_have_count(0)
    assert alice.console_errors == []
