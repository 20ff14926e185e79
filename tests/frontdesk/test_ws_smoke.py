import pytest
from channels.db import database_sync_to_async

from tests.factories import direct_conversation, user_with_token
from tests.ws import connect

pytestmark = pytest.mark.django_db(transaction=True)


async def test_message_goes_sent_delivered_read():
    (alice, alice_token), (bob, bob_token) = [await database_sync_to_async(user_with_token)() for _ in range(2)]
    conversation = await database_sync_to_async(direct_conversation)(alice, bob)
    a = await connect(alice_token)
    b = await connect(bob_token)

    await a.send(type="message.send", client_id="c1", conversation=conversation.pk, text="hello")
    sent = await a.receive_type("message.sent")
    assert sent["client_id"] == "c1" and sent["message"]["seq"] == 1 and sent["message"]["status"] == "sent"

    new = await b.receive_type("message.new")
    assert new["message"]["text"] == "hello"

    await b.send(type="ack", conversation=conversation.pk, seq=1)
    delivered = await a.receive_type("message.status")
    assert delivered == {"type": "message.status", "conversation": conversation.pk, "seq": 1, "status": "delivered", "user": bob.pk}

    await b.send(type="read", conversation=conversation.pk, seq=1)
    read = await a.receive_type("message.status")
    assert read["status"] == "read" and read["user"] == bob.pk
    await a.close()
    await b.close()
