"""Hostile websocket input: property-based frames of every type, floods, and the frame budget.

Whatever a client sends, the server answers with events of the documented shapes (never a
`server_error`), keeps the connection open, and stores exactly the messages it acknowledged with
`message.sent`; watermarks stay within bounds. Floods are answered `rate_limited`, and a client
that keeps flooding is closed (4008).
"""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from broker.ratelimit import FrameBudget
from storage.models import Conversation, Membership, Message
from tests.factories import direct_conversation, group_conversation, user_with_token
from tests.ws import connect, db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_EVENTS = {"message.new", "message.sent", "message.status", "typing", "presence", "error", "session.revoked"}
# The codes docs/protocol.md lists for websocket errors; server_error is deliberately not among them.
CLIENT_ERROR_CODES = {
    "invalid", "not_found", "forbidden", "blocked", "conflict", "rate_limited", "bad_json", "bad_frame",
    "unknown_type", "frame_too_large",
}
FRAME_TYPES = ["message.send", "ack", "read", "typing"]

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def frames(conversation_ids: list[int]) -> st.SearchStrategy:
    """Frames of every type, mostly well-typed with hostile values, some entirely malformed."""
    conversation = st.sampled_from(conversation_ids) | st.integers(min_value=-3, max_value=2**63) | json_values
    seq = st.integers(min_value=-3, max_value=12) | st.integers(min_value=2**62, max_value=2**80) | json_values
    text = (st.text(min_size=0, max_size=300) | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                                                         min_size=1, max_size=3) | json_values)
    client_id = st.uuids().map(str) | st.text(max_size=80) | json_values
    ref = st.text(max_size=200) | st.integers() | json_values
    typed = st.fixed_dictionaries(
        {"type": st.sampled_from(FRAME_TYPES)},
        optional={"conversation": conversation, "seq": seq, "text": text, "client_id": client_id, "ref": ref},
    )
    valid_send = st.fixed_dictionaries({
        "type": st.just("message.send"), "conversation": st.sampled_from(conversation_ids),
        "client_id": st.uuids().map(str), "text": st.text(min_size=1, max_size=100).filter(str.strip),
    })
    odd_type = st.fixed_dictionaries({"type": json_values | st.text(max_size=20)}, optional={"ref": ref})
    as_json = (valid_send | typed | odd_type | st.dictionaries(st.text(max_size=10), json_values, max_size=4) | json_values).map(
        lambda frame: json.dumps(frame)
    )
    garbage = st.text(min_size=1, max_size=200) | st.sampled_from(["{", "[" * 5000, '{"type": "ack", "seq": NaN}', "\ud800"])
    return st.one_of(as_json, as_json, as_json, garbage, st.binary(min_size=1, max_size=64))  # the test communicator cannot send empty frames


def check_event(event: dict) -> None:
    assert isinstance(event, dict) and event.get("type") in SERVER_EVENTS, event
    if event["type"] == "error":
        assert event["code"] in CLIENT_ERROR_CODES, event
        assert isinstance(event["message"], str) and event["message"], event
        assert "frame" in event and "ref" in event, event


def stored_state() -> tuple[set[int], list[tuple[int, int, int, int]]]:
    messages = set(Message.objects.values_list("pk", flat=True))
    marks = list(Membership.objects.values_list("conversation__last_seq", "delivered_seq", "read_seq", "conversation_id"))
    return messages, marks


def test_any_frame_gets_documented_answers_and_stores_only_what_it_acknowledges(settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 100_000}
    alice, alice_token = user_with_token()
    bob, _ = user_with_token()
    carol, _ = user_with_token()
    direct = direct_conversation(alice, bob)
    group = group_conversation(alice, bob, title="Hypothesis")
    outside = direct_conversation(bob, carol)  # Alice is not in it
    ids = [direct.pk, group.pk, outside.pk]
    counts = {"examples": 0, "frames": 0, "errors": 0, "stored": 0}

    async def exchange(batch: list) -> list[dict]:
        client = await connect(alice_token)
        try:
            await client.drain(timeout=0)  # what connecting brought came before the probe's answer
            for frame in batch:
                if isinstance(frame, bytes):
                    await client.send_bytes(frame)
                else:
                    await client.send_raw(frame)
            await client._wait_ready(timeout=5)  # the probe's answer comes after every frame's
            assert client.is_open
            return await client.drain(timeout=0.02)
        finally:
            await client.close()

    @hypothesis_settings(max_examples=120, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=st.lists(frames(ids), min_size=1, max_size=4))
    def property_(batch):
        messages_before, _ = stored_state()
        events = async_to_sync(exchange)(batch)
        for event in events:
            check_event(event)
        messages_after, marks = stored_state()
        acknowledged = {e["message"]["id"] for e in events if e["type"] == "message.sent"}
        new = messages_after - messages_before
        assert new <= acknowledged, "a message was stored without a message.sent"
        for last_seq, delivered, read, _ in marks:
            assert 0 <= read <= delivered <= last_seq
        assert not Message.objects.filter(conversation=outside, sender=alice).exists()
        counts["examples"] += 1
        counts["frames"] += len(batch)
        counts["errors"] += sum(e["type"] == "error" for e in events)
        counts["stored"] += len(new)

    property_()
    for conversation in Conversation.objects.all():
        assert list(Message.objects.filter(conversation=conversation).values_list("seq", flat=True).order_by("seq")) == \
            list(range(1, conversation.last_seq + 1))
    print(f"websocket property: {counts}")
    assert counts["errors"] > 0 and counts["stored"] > 0  # both sides of the property were exercised


async def test_a_flood_of_frames_is_refused_then_closed(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "FRAME_BURST": 20, "FRAME_RATE": 0.5}
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)  # the ready probe spent one frame of the budget
    b = await sockets(bob_token)

    for n in range(19):
        await a.send(type="typing", conversation=conversation.pk)
    await a.send(type="message.send", client_id="over", conversation=conversation.pk, text="over budget")
    refused = await a.receive_type("error")
    assert (refused["code"], refused["frame"]) == ("rate_limited", None)
    assert refused["retry_after"] >= 1
    assert a.is_open

    for n in range(45):  # goes on flooding a whole burst more: closed
        await a.send(type="typing", conversation=conversation.pk)
    assert await a.receive_close() == 4008
    assert not await db(Message.objects.filter(client_id="over").exists)()
    # The other side got at most the typing signals of the budget, never the refused frames' effects.
    typings = [e for e in await b.drain() if e["type"] == "typing"]
    assert len(typings) <= 20


async def test_the_budget_refills(sockets, settings):
    # A slow refill so that a loaded machine taking a while between frames cannot refill the
    # budget before it runs out: five frames after the ready probe need 1.5 s to all fit.
    settings.MESSENGER = {**settings.MESSENGER, "FRAME_BURST": 3, "FRAME_RATE": 2}
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)  # the ready probe spent one frame of the budget

    for n in range(5):  # refused ones stay at most a burst over: not closed
        await a.send(type="typing", conversation=conversation.pk)
    assert (await a.receive_type("error"))["code"] == "rate_limited"

    await asyncio.sleep(0.6)
    assert (await a.send_message(conversation.pk, "after a pause"))["seq"] == 1


def test_frame_budget_is_a_token_bucket():
    now = [0.0]
    budget = FrameBudget(rate=2, burst=3, clock=lambda: now[0])
    assert [budget.spend() for _ in range(4)] == [True, True, True, False]
    assert budget.overdrawn == 1 and budget.retry_after() == 1
    now[0] = 1.0  # two more frames' worth
    assert [budget.spend() for _ in range(3)] == [True, True, False]
    now[0] = 100.0  # never more than a burst
    assert sum(budget.spend() for _ in range(10)) == 3


def test_a_flood_handled_slower_than_it_arrives_is_still_a_flood():
    # A real server takes a while per frame, so a token refills now and then in the middle of a
    # flood: the flood must still end in a close, not be let through a frame per refill forever.
    now = [0.0]
    budget = FrameBudget(rate=50, burst=200, clock=lambda: now[0])
    assert all(budget.spend() for _ in range(200))
    refused = 0
    for _ in range(1000):  # 2,000 frames a second, as a real server handles a flood under load
        now[0] += 0.0005
        if not budget.spend():
            refused += 1
        if budget.flooding:
            break
    assert budget.flooding and refused <= 250


def test_a_client_over_its_rate_but_not_flooding_is_not_closed():
    # Twice the rate for a minute: half its frames are refused, yet it never outruns the refill by a
    # whole burst, so it is throttled, not closed.
    now = [0.0]
    budget = FrameBudget(rate=50, burst=200, clock=lambda: now[0])
    for _ in range(6000):
        now[0] += 0.01
        budget.spend()
        assert not budget.flooding


async def test_binary_and_oversized_frames_after_each_other_do_not_crash(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "MAX_FRAME_BYTES": 1000}
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)

    await a.send_bytes(b"\xff" * 5000)
    await a.send_raw("x" * 100_000)
    await a.send_raw("[" * 990)  # under the limit, nested and unterminated
    await a.send_raw("[" * 50_000)
    await a.send_raw('{"type": "ack", "conversation": ' + "[" * 400 + "]" * 400 + ', "seq": 1}')
    codes = [(await a.receive_type("error"))["code"] for _ in range(5)]
    assert codes == ["bad_frame", "frame_too_large", "bad_json", "frame_too_large", "invalid"]
    assert (await a.send_message(conversation.pk, "still fine"))["seq"] == 1
