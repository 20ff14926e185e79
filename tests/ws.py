"""Helpers for websocket tests: real connections through the project's ASGI application."""

import asyncio
import json

from channels.testing import WebsocketCommunicator

from messenger.asgi import application


class Client:
    """One connected device, speaking the JSON protocol."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator

    async def send(self, **frame):
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str):
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 3) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_type(self, event_type: str, timeout: float = 3) -> dict:
        """The next event of `event_type`, skipping others (presence, typing...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.receive(timeout=max(0.01, deadline - loop.time()))
            if event["type"] == event_type:
                return event

    async def nothing_more(self, timeout: float = 0.2) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def drain(self, timeout: float = 0.2) -> list[dict]:
        events = []
        while not await self.communicator.receive_nothing(timeout=timeout):
            events.append(await self.receive())
        return events

    async def close(self):
        await self.communicator.disconnect()


async def connect(token: str | None = None, *, headers: list | None = None, path: str | None = None) -> Client:
    url = path or (f"/ws/v1/?token={token}" if token else "/ws/v1/")
    communicator = WebsocketCommunicator(application, url, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return Client(communicator)
