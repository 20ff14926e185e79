"""Frames the server cannot use: each gets an error naming it, stores nothing and hurts nobody."""

import json

import pytest

from storage.models import Message
from tests.factories import direct_conversation
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_LIMIT = 200  # bytes; the test lowers MAX_FRAME_BYTES so a frame is "too large" cheaply

# (what is wrong, the frame as a function of the conversation id, expected error fields)
BAD_FRAMES = [
    ("binary", lambda c: b'{"type": "typing"}', {"code": "bad_frame", "frame": None, "ref": None}),
    ("invalid JSON", lambda c: '{"type": "message.send",', {"code": "bad_json", "frame": None, "ref": None}),
    ("a JSON array", lambda c: "[1, 2]", {"code": "bad_frame", "frame": None, "ref": None}),
    ("a JSON string", lambda c: '"hello"', {"code": "bad_frame", "frame": None, "ref": None}),
    ("no type", lambda c: {"conversation": c, "ref": "r1"},
     {"code": "unknown_type", "frame": None, "ref": "r1", "field": "type"}),
    ("a type that is not a string", lambda c: {"type": 7, "ref": "r1"},
     {"code": "unknown_type", "frame": None, "ref": "r1", "field": "type"}),
    ("an unknown type", lambda c: {"type": "message.delete", "ref": "r1"},
     {"code": "unknown_type", "frame": "message.delete", "ref": "r1", "field": "type"}),
    ("a message without text", lambda c: {"type": "message.send", "client_id": "x1", "conversation": c},
     {"code": "invalid", "frame": "message.send", "ref": "x1", "field": "text"}),
    ("a message without client_id", lambda c: {"type": "message.send", "conversation": c, "text": "hi", "ref": 5},
     {"code": "invalid", "frame": "message.send", "ref": 5, "field": "client_id"}),
    ("a message with a numeric client_id", lambda c: {"type": "message.send", "client_id": 9, "conversation": c, "text": "hi"},
     {"code": "invalid", "frame": "message.send", "ref": 9, "field": "client_id"}),
    ("a message whose text is a number", lambda c: {"type": "message.send", "client_id": "x2", "conversation": c, "text": 42},
     {"code": "invalid", "frame": "message.send", "ref": "x2", "field": "text"}),
    ("a message of blank text", lambda c: {"type": "message.send", "client_id": "x3", "conversation": c, "text": "  \n"},
     {"code": "invalid", "frame": "message.send", "ref": "x3", "field": "text"}),
    # JSON can escape half of a surrogate pair, which no database can store: the client's error.
    ("text with an unpaired surrogate",
     lambda c: {"type": "message.send", "client_id": "x5", "conversation": c, "text": "half \ud83d"},
     {"code": "invalid", "frame": "message.send", "ref": "x5", "field": "text"}),
    ("a conversation id that is a word",
     lambda c: {"type": "message.send", "client_id": "x4", "conversation": "mine", "text": "hi"},
     {"code": "invalid", "frame": "message.send", "ref": "x4", "field": "conversation"}),
    ("a conversation id that is true", lambda c: {"type": "typing", "conversation": True, "ref": "t1"},
     {"code": "invalid", "frame": "typing", "ref": "t1", "field": "conversation"}),
    ("an ack without seq", lambda c: {"type": "ack", "conversation": c, "ref": "a1"},
     {"code": "invalid", "frame": "ack", "ref": "a1", "field": "seq"}),
    ("a read whose seq is a string", lambda c: {"type": "read", "conversation": c, "seq": "1", "ref": "a2"},
     {"code": "invalid", "frame": "read", "ref": "a2", "field": "seq"}),
    ("a negative seq", lambda c: {"type": "ack", "conversation": c, "seq": -1, "ref": "a3"},
     {"code": "invalid", "frame": "ack", "ref": "a3", "field": "seq"}),
    # Under the text limit in characters, over the frame limit in bytes: counted as UTF-8.
    ("too large", lambda c: {"type": "message.send", "client_id": "big", "conversation": c, "text": "\u00e9" * FRAME_LIMIT},
     {"code": "frame_too_large", "frame": None, "ref": None}),
]


async def test_bad_frames_get_errors_and_the_connection_keeps_working(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "MAX_FRAME_BYTES": FRAME_LIMIT}
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(conversation.pk, "before")

    # One connection takes every kind of bad frame in a row, each followed by a good one.
    for n, (problem, make_frame, expected) in enumerate(BAD_FRAMES):
        frame = make_frame(conversation.pk)
        if isinstance(frame, bytes):
            await a.send_bytes(frame)
        else:
            await a.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
        error = await a.receive_type("error")
        assert {key: error.get(key) for key in expected} == expected, problem
        assert error["message"], problem
        assert (await a.send_message(conversation.pk, f"after {problem}"))["seq"] == n + 2, problem

    # Nothing bad was stored, and Bob saw only the real messages, no errors.
    texts = await db(lambda: list(Message.objects.filter(conversation=conversation).values_list("text", flat=True)))()
    assert texts == ["before"] + [f"after {problem}" for problem, _, _ in BAD_FRAMES]
    news = await b.receive_types("message.new", "error", count=len(texts))
    assert [(n["type"], n["message"]["text"]) for n in news] == [("message.new", text) for text in texts]


async def test_an_overlong_ref_is_not_echoed(sockets):
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)

    await a.send(type="ack", conversation=conversation.pk, seq="x", ref="r" * 1000)

    error = await a.receive_type("error")
    assert (error["code"], error["frame"], error["ref"]) == ("invalid", "ack", None)


async def test_json_nested_too_deep_to_parse_is_an_error_not_a_crash(sockets):
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)

    await a.send_raw("[" * 20_000 + "]" * 20_000)  # within the default frame limit

    assert (await a.receive_type("error"))["code"] == "bad_json"
    assert (await a.send_message(conversation.pk, "still here"))["seq"] == 1


@pytest.mark.parametrize("field", ["conversation", "seq", "ref"])
async def test_a_number_longer_than_any_id_is_refused_naming_its_field(sockets, field):
    """Valid JSON still: Python's json refuses integers of over 4,300 digits as if they were not."""
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    frame = {"type": '"ack"', "conversation": str(conversation.pk), "seq": "1", "ref": '"r"', field: "9" * 5000}

    await a.send_raw("{" + ", ".join(f'"{key}": {value}' for key, value in frame.items()) + "}")

    error = await a.receive_type("error")
    if field == "ref":  # a ref no client could have meant: not echoed, and the frame is handled
        assert error["ref"] is None and error["code"] == "invalid" and error["field"] == "seq"
    else:
        assert (error["code"], error["frame"], error["field"], error["ref"]) == ("invalid", "ack", field, "r")
