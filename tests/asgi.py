"""HTTP requests to the ASGI application as a server (uvicorn) hands them over: the scope, the
body in one or more http.request messages, and the answer read back."""

from asgiref.testing import ApplicationCommunicator

from messenger.asgi import application


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]], *, query: str = "") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000)}


def communicator(scope: dict) -> ApplicationCommunicator:
    return ApplicationCommunicator(application, scope)


async def response(communicator: ApplicationCommunicator) -> tuple[int, dict, bytes]:
    """(status, headers by lowercase name, the whole body) of the answer, once it has been sent."""
    start = await communicator.receive_output(timeout=10)
    body = b""
    while True:
        part = await communicator.receive_output(timeout=10)
        body += part.get("body", b"")
        if not part.get("more_body"):
            break
    await communicator.wait()
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body
