"""POST /api/v1/media, sending media in messages (REST and websocket), downloads with Range."""

import hashlib
import json

import pytest
from asgiref.sync import sync_to_async

from broker.errors import TooLarge
from storage.models import Media
from tests import asgi
from tests import media_samples as samples
from tests.factories import api_user, direct_conversation, group_conversation
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def upload(client, content: bytes, kind: str | None = None, name="upload.bin", content_type="application/octet-stream"):
    data = {"file": samples.uploaded(content, name, content_type)}
    if kind:
        data["kind"] = kind
    return client.post("/api/v1/media", data, format="multipart")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def send(client, conversation_id: int, media_id: int, text: str | None = None, client_id: str = "m1"):
    data = {"client_id": client_id, "media_id": media_id}
    if text is not None:
        data["text"] = text
    return client.post(f"/api/v1/conversations/{conversation_id}/messages", data)


@pytest.mark.parametrize("content,kind,expected_kind,mime", [
    (samples.image_bytes("JPEG"), "image", "image", "image/jpeg"),
    (samples.image_bytes("PNG"), None, "image", "image/png"),
    (samples.image_bytes("WEBP"), None, "image", "image/webp"),
    (samples.MP4, "video", "video", "video/mp4"),
    (samples.WEBM, None, "video", "video/webm"),
    (samples.OGG_OPUS, "voice", "voice", "audio/ogg"),
    (samples.WEBM, "voice", "voice", "video/webm"),
    (samples.M4A, None, "voice", "audio/mp4"),
    (samples.PDF, "document", "document", "application/pdf"),
])
def test_each_kind_end_to_end(content, kind, expected_kind, mime):
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    conversation = direct_conversation(alice, bob)

    response = upload(alice_client, content, kind, name="not-what-it-says.exe", content_type="text/html")
    assert response.status_code == 201, response.json()
    media = response.json()
    assert (media["kind"], media["mime_type"]) == (expected_kind, mime)
    assert media["thumbnail_url"] == (f"/api/v1/media/{media['id']}/thumbnail" if expected_kind == "image" else None)

    sent = send(alice_client, conversation.pk, media["id"], text="caption" if kind else None)
    assert sent.status_code == 201, sent.json()
    assert sent.json()["media"] == media and sent.json()["text"] == ("caption" if kind else "")

    history = bob_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()["results"]
    assert history[-1]["media"] == media
    download = bob_client.get(media["url"])
    assert download.status_code == 200 and download["Content-Type"] == mime
    data = body(download)
    assert len(data) == media["size"] == int(download["Content-Length"])
    assert hashlib.sha256(data).hexdigest() == media["sha256"]
    if expected_kind == "image":
        thumbnail = bob_client.get(media["thumbnail_url"])
        assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
        assert body(thumbnail)[:3] == b"\xff\xd8\xff"
    else:
        # A document is saved under the name it was sent with (its content decided its type).
        assert download["Content-Disposition"] == ("inline" if expected_kind != "document"
                                                   else 'attachment; filename="not-what-it-says.exe"')
    assert media["name"] == ("not-what-it-says.exe" if expected_kind == "document" else "")


@pytest.mark.parametrize("sent_as, shown_as, saved_as", [
    ("Contrat signé.pdf", "Contrat signé.pdf", "attachment; filename*=utf-8''Contrat%20sign%C3%A9.pdf"),
    # Right-to-left override: "invoice\u202efdp.exe" would read as "invoiceexe.pdf".
    ("invoice\u202efdp.exe", "invoicefdp.exe", 'attachment; filename="invoicefdp.exe"'),
    ("..\\..\\boot.ini", "boot.ini", 'attachment; filename="boot.ini"'),
    ("...", "", None),
])
def test_a_document_keeps_a_name_fit_to_show_and_save(sent_as, shown_as, saved_as):
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    conversation = direct_conversation(alice, bob)

    media = upload(alice_client, samples.PDF, "document", name=sent_as).json()
    send(alice_client, conversation.pk, media["id"])

    shown = bob_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()["results"][-1]["media"]
    assert media["name"] == shown["name"] == shown_as
    expected = saved_as or f'attachment; filename="media-{media["id"]}"'
    assert bob_client.get(media["url"])["Content-Disposition"] == expected


def test_a_retried_media_message_returns_the_same_message():
    alice, client = api_user()
    bob, _ = api_user()
    conversation = direct_conversation(alice, bob)
    media_id = upload(client, samples.PDF).json()["id"]
    first = send(client, conversation.pk, media_id)
    again = send(client, conversation.pk, media_id)
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]


@pytest.mark.parametrize("content,kind", [
    (samples.PDF, "image"),
    (samples.image_bytes(), "video"),
    (samples.PDF, "voice"),
    (b"MZ\x90\x00 not a video", "video"),
])
def test_a_mismatch_is_a_400_on_file_and_nothing_stays(content, kind, media_root):
    _, client = api_user()
    response = upload(client, content, kind, name="holiday.jpg", content_type="image/jpeg")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "file" and kind in response.json()["error"]["message"]
    assert stored_files(media_root) == [] and not Media.objects.exists()


def test_bad_requests_are_400():
    _, client = api_user()
    assert upload(client, samples.PDF, "sticker").json()["error"]["field"] == "kind"
    assert client.post("/api/v1/media", {"kind": "image"}, format="multipart").json()["error"]["field"] == "file"
    assert upload(client, b"").status_code == 400
    # JSON is not how files are sent.
    assert client.post("/api/v1/media", {"file": "aGVsbG8="}).status_code == 415


def test_oversize_is_413_too_large_naming_the_limit(settings, media_root):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 16 * 1024 * 1024, "video": 64 * 1024 * 1024, "voice": 2048, "document": 100 * 1024 * 1024}}
    _, client = api_user()
    response = upload(client, samples.OGG_OPUS + b"\x00" * 2048)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "2048 bytes" in error["message"] and "voice" in error["message"]
    assert stored_files(media_root) == []


def test_a_body_over_the_largest_limit_is_refused_before_it_is_read(settings):
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 100, "video": 100, "voice": 100, "document": 100}}
    _, client = api_user()
    response = upload(client, b"x" * 200_000)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_a_file_stops_at_the_largest_limit_as_it_is_received(settings, media_root):
    from django.test import RequestFactory

    from broker.media_http import LimitedUploadHandler

    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 100, "video": 100, "voice": 100, "document": 1000}}
    handler = LimitedUploadHandler(RequestFactory().post("/api/v1/media"))
    handler.new_file("file", "a.bin", "application/octet-stream", None)
    handler.receive_data_chunk(b"x" * 600, 0)
    with pytest.raises(TooLarge, match="1000 bytes"):
        handler.receive_data_chunk(b"x" * 600, 600)
    assert handler.file.closed


async def asgi_upload(path: str, token: str, content: bytes, *, chunked: bool) -> tuple[int, dict]:
    """POST a multipart upload to the ASGI application as uvicorn hands it over: a chunked body has
    no Content-Length and arrives in several http.request messages."""
    boundary = "----messenger-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    headers = [(b"authorization", f"Bearer {token}".encode()),
               (b"content-type", f"multipart/form-data; boundary={boundary}".encode())]
    headers.append((b"transfer-encoding", b"chunked") if chunked else (b"content-length", str(len(body)).encode()))
    request = asgi.communicator(asgi.http_scope("POST", path, headers))
    half = len(body) // 2
    await request.send_input({"type": "http.request", "body": body[:half], "more_body": True})
    await request.send_input({"type": "http.request", "body": body[half:], "more_body": False})
    status, _, answer = await asgi.response(request)
    return status, json.loads(answer)


async def test_an_upload_of_undeclared_length_is_told_to_send_its_length(media_root):
    """Straight to uvicorn, a client streaming its file (Transfer-Encoding: chunked) was told "No
    file was submitted."; it is told what to change, and the same upload with its length works."""
    from tests.factories import user_with_token

    _, token = await sync_to_async(user_with_token)()

    status, answer = await asgi_upload("/api/v1/media", token, samples.PDF, chunked=True)

    assert status == 411 and answer["error"]["code"] == "length_required"
    assert "Content-Length" in answer["error"]["message"]
    assert not await sync_to_async(Media.objects.exists)() and stored_files(media_root) == []
    status, answer = await asgi_upload("/api/v1/media", token, samples.PDF, chunked=False)
    assert status == 201 and answer["mime_type"] == "application/pdf"


def test_only_members_where_it_was_sent_may_download():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    carol, carol_client = api_user()
    media = upload(alice_client, samples.image_bytes()).json()
    # Uploaded but not sent: only the uploader.
    assert alice_client.get(media["url"]).status_code == 200
    assert bob_client.get(media["url"]).status_code == 404
    assert bob_client.get(media["thumbnail_url"]).status_code == 404
    send(alice_client, direct_conversation(alice, bob).pk, media["id"])
    assert bob_client.get(media["url"]).status_code == 200
    assert bob_client.get(media["thumbnail_url"]).status_code == 200
    outsider = carol_client.get(media["url"])
    assert outsider.status_code == 404 and outsider.json()["error"]["code"] == "not_found"
    assert carol_client.get("/api/v1/media/999999").status_code == 404
    # Nor may they send it on: 404 on the media.
    other = direct_conversation(carol, bob)
    refused = send(carol_client, other.pk, media["id"], client_id="steal")
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "media_id"
    # Bob, who can see it, may forward it.
    group = group_conversation(bob, carol)
    assert send(bob_client, group.pk, media["id"], client_id="fwd").status_code == 201
    assert carol_client.get(media["url"]).status_code == 200


def test_anonymous_downloads_and_uploads_are_401():
    _, client = api_user()
    media = upload(client, samples.PDF).json()
    client.credentials()
    assert client.get(media["url"]).status_code == 401
    assert upload(client, samples.PDF).status_code == 401


def test_documents_have_no_thumbnail():
    _, client = api_user()
    media = upload(client, samples.PDF).json()
    assert client.get(f"{media['url']}/thumbnail").status_code == 404


@pytest.mark.parametrize("header,status,expected,content_range", [
    ("bytes=0-9", 206, slice(0, 10), "bytes 0-9/{n}"),
    ("bytes=100-", 206, slice(100, None), "bytes 100-{last}/{n}"),
    ("bytes=-16", 206, slice(-16, None), "bytes {tail}-{last}/{n}"),
    ("bytes=10-999999", 206, slice(10, None), "bytes 10-{last}/{n}"),
    ("bytes=0-1,5-6", 200, slice(None), None),  # several ranges: the whole file
    ("items=0-1", 200, slice(None), None),
    ("bytes=9-3", 200, slice(None), None),
])
def test_range_requests(header, status, expected, content_range):
    _, client = api_user()
    media = upload(client, samples.MP4, "video").json()
    n = len(samples.MP4)
    response = client.get(media["url"], HTTP_RANGE=header)
    assert response.status_code == status and response["Accept-Ranges"] == "bytes"
    assert body(response) == samples.MP4[expected]
    assert int(response["Content-Length"]) == len(samples.MP4[expected])
    if content_range:
        assert response["Content-Range"] == content_range.format(n=n, last=n - 1, tail=n - 16)
    else:
        assert "Content-Range" not in response


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=-0"])
def test_an_unsatisfiable_range_is_416(header):
    _, client = api_user()
    media = upload(client, samples.MP4, "video").json()
    response = client.get(media["url"], HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(samples.MP4)}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


def test_if_range_with_another_etag_gets_the_whole_file():
    _, client = api_user()
    media = upload(client, samples.MP4, "video").json()
    assert client.get(media["url"], HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE='"stale"').status_code == 200
    same = client.get(media["url"], HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE=f'"{media["sha256"]}"')
    assert same.status_code == 206 and body(same) == samples.MP4[:4]


def test_an_image_accept_header_still_gets_the_file():
    _, client = api_user()
    media = upload(client, samples.image_bytes()).json()
    response = client.get(media["url"], HTTP_ACCEPT="image/avif,image/webp,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert client.get(media["url"], HTTP_ACCEPT="image/png").status_code == 200


def test_identical_uploads_share_one_blob(media_root):
    _, alice_client = api_user()
    _, bob_client = api_user()
    first = upload(alice_client, samples.PDF).json()
    second = upload(bob_client, samples.PDF).json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert len(stored_files(media_root)) == 1


def test_text_is_still_required_without_media():
    alice, client = api_user()
    bob, _ = api_user()
    conversation = direct_conversation(alice, bob)
    response = client.post(f"/api/v1/conversations/{conversation.pk}/messages", {"client_id": "x"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "text"


async def test_media_over_the_websocket(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    media = await db(lambda: _upload_as(alice))()
    a, b = await sockets(alice_token), await sockets(bob_token)

    await a.send(type="message.send", client_id="v1", conversation=conversation.pk, media_id=media.pk)
    sent = await a.receive_type("message.sent")
    assert sent["message"]["media"]["id"] == media.pk and sent["message"]["media"]["kind"] == "voice"
    assert sent["message"]["text"] == ""
    new = await b.receive_type("message.new")
    assert new["message"] == sent["message"]

    await a.send(type="message.send", client_id="v2", conversation=conversation.pk, media_id=10**9, ref="r")
    error = await a.receive_type("error")
    assert error["code"] == "not_found" and error["field"] == "media_id"


def _upload_as(user):
    from broker.services.media import upload as upload_media

    return upload_media(uploader=user, file=samples.uploaded(samples.OGG_OPUS), kind="voice")


def test_a_browser_session_uploads_with_its_csrf_token(settings):
    """The session's CSRF check reads the multipart body before the view: the size-limited upload
    handler must already be in place then (a real bug the browser test found)."""
    from django.middleware.csrf import _get_new_csrf_string

    from tests.factories import UserFactory
    from tests.openapi import SchemaCheckedClient

    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    refused = client.post("/api/v1/media", {"file": samples.uploaded(samples.PDF)}, format="multipart")
    assert refused.status_code == 403
    response = client.post("/api/v1/media", {"file": samples.uploaded(samples.OGG_OPUS), "kind": "voice"},
                           format="multipart", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201 and response.json()["kind"] == "voice"
    settings.MESSENGER = {**settings.MESSENGER, "MEDIA_MAX_BYTES": {
        "image": 100, "video": 100, "voice": 100, "document": 100}}
    too_big = client.post("/api/v1/media", {"file": samples.uploaded(b"x" * 100_000)}, format="multipart",
                          HTTP_X_CSRFTOKEN=token)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
