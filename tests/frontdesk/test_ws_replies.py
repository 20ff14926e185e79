"""Replying to a message over the websocket: `message.send` with `reply_to`, carried by the
`message.sent`, the live `message.new` and the catch-up; refusals as `error` events naming it."""

import pytest

from storage.models import Message
from tests.factories import direct_conversation, group_conversation
from tests.ws import another_device, db, people, sockets, two_in_a_chat  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


async def send_reply(socket, conversation: int, text: str, reply_to, client_id: str) -> None:
    await socket.send(type="message.send", client_id=client_id, conversation=conversation, text=text,
                      reply_to=reply_to)


async def test_a_reply_reaches_the_sender_the_recipient_and_the_senders_other_devices_with_what_it_quotes(sockets):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    laptop = await sockets(await another_device(bob))
    question = await a.send_message(chat.pk, "lunch?")
    assert question["reply_to"] is None

    await send_reply(b, chat.pk, "yes!", question["seq"], "r1")
    sent = (await b.receive_type("message.sent"))["message"]

    assert (sent["text"], sent["reply_to"]) == ("yes!", question["seq"])
    assert (await a.receive_new(sent["seq"]))["message"] == sent
    assert (await laptop.receive_new(sent["seq"]))["message"]["reply_to"] == question["seq"]


async def test_catch_up_carries_what_a_reply_quotes(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    question = await a.send_message(chat.pk, "lunch?")
    await send_reply(a, chat.pk, "at noon?", question["seq"], "r1")
    reply = (await a.receive_type("message.sent"))["message"]

    b = await sockets(bob_token)  # offline until now: both arrive in the catch-up

    caught_up = [(await b.receive_new(seq))["message"] for seq in (question["seq"], reply["seq"])]
    assert [(m["text"], m["reply_to"]) for m in caught_up] == [("lunch?", None), ("at noon?", question["seq"])]


@pytest.mark.parametrize("value,code", [(0, "invalid"), ("1", None), ("one", "invalid"), (True, "invalid"),
                                        (1.5, "invalid"), ({"seq": 1}, "invalid"), (99, "not_found")])
async def test_a_reply_to_that_may_not_be_quoted_is_an_error_naming_it_and_nothing_is_stored(sockets, value, code):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    await a.send_message(chat.pk, "lunch?")

    await send_reply(b, chat.pk, "hm", value, "r1")

    if code is None:  # a seq given as a string of digits, as ids are elsewhere: accepted
        assert (await b.receive_type("message.sent"))["message"]["reply_to"] == 1
        return
    error = await b.receive_type("error")
    assert (error["code"], error["field"], error["frame"], error["ref"]) == (code, "reply_to", "message.send", "r1")
    assert await db(lambda: list(Message.objects.filter(conversation=chat).values_list("text", flat=True)))() == [
        "lunch?"]
    assert not [event for event in await a.drain() if event["type"] == "message.new"]


async def test_a_system_notice_cannot_be_quoted_and_the_error_carries_the_frames_ref(sockets):
    (alice, alice_token), (bob, _) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)

    await a.send(type="message.send", client_id="r1", conversation=group.pk, text="hm", reply_to=1, ref="frame-7")

    error = await a.receive_type("error")
    assert (error["code"], error["field"], error["ref"]) == ("invalid", "reply_to", "frame-7")
    assert "system" in error["message"]


async def test_resending_a_reply_after_a_lost_answer_gets_the_one_stored_message(sockets):
    alice, bob, chat, a, b = await two_in_a_chat(sockets)
    await a.send_message(chat.pk, "lunch?")
    await send_reply(b, chat.pk, "yes", 1, "r1")
    first = (await b.receive_type("message.sent"))["message"]

    await send_reply(b, chat.pk, "yes", 1, "r1")
    again = (await b.receive_type("message.sent"))["message"]

    assert (again["id"], again["seq"], again["reply_to"]) == (first["id"], first["seq"], 1)
    assert await db(lambda: Message.objects.filter(conversation=chat).count())() == 2
