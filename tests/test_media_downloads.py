"""Media downloads from a real server process are streamed (broker/media_http.py).

Handed Django's usual synchronous iterator, an ASGI server read the whole file into memory before
sending its first byte: a 100 MB document cost 100 MB per download in flight (twice that on
Daphne). Checked on uvicorn (as `make run` serves) and Daphne, each started fresh for the download
so that nothing of the upload's memory is left to reuse. Daphne still holds what it has not sent:
its Twisted transport takes every chunk at once instead of waiting for the client to read, so
there the file is held once instead of twice (docs/deployment.md recommends uvicorn).
"""

import hashlib
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.live_server import LiveDatabase, ServerProcess, register, servers_unavailable_reason, upload_media

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"needs uvicorn and Daphne: {_unavailable}")

MIB = 1024 * 1024
SIZE = 48 * MIB
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_a_large_download_is_streamed_not_held_in_memory(tmp_path, server_name):
    database = LiveDatabase(tmp_path)
    database.create()
    content = os.urandom(SIZE)
    uploader = ServerProcess(database)
    try:
        uploader.start()
        _, token = register(uploader, "Ada")
        media = upload_media(uploader, token, content)
    finally:
        uploader.kill()
    server = ServerProcess(database, server=server_name)
    try:
        server.start()
        before = resident_mib(server.proc.pid)
        request = urllib.request.Request(f"{server.url}{media['url']}", headers={"Authorization": f"Bearer {token}"})
        with _opener.open(request, timeout=60) as response:
            assert response.headers["Content-Length"] == str(SIZE)
            first = response.read(MIB)
            time.sleep(1)  # the client reads slowly: whatever the server holds for it, it holds now
            during = resident_mib(server.proc.pid)
            received = first + response.read()
        assert hashlib.sha256(received).hexdigest() == media["sha256"] == hashlib.sha256(content).hexdigest()
        held_at_most = SIZE / 3 if server_name == "uvicorn" else SIZE * 1.5
        assert (during - before) * MIB < held_at_most, f"{during - before:.0f} MiB more while sending {SIZE // MIB} MiB"
    finally:
        server.kill()
        database.drop()
