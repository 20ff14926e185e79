"""Who is on the other end of a websocket: a device token (`?token=`) or the browser's session.

Session cookies ride along on any page's request, so a cookie-authenticated socket must come from
one of our own origins (the websocket form of CSRF protection); a token needs no such check. As
Django's CSRF check does for HTTPS, the whole origin counts: scheme, host and port must be those of
the socket's own address (its Host header, on an allowed host) or one of CSRF_TRUSTED_ORIGINS.
"""

from urllib.parse import parse_qs, urlsplit

from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from django.utils.http import is_same_domain

from broker.services.accounts import authenticate_token, authenticate_token_on_loop
from broker.services.sessions import session_user, session_user_on_loop
from frontdesk.db import database_sync_to_async

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, or None for anything else ("null", garbage)."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _is_secure(scope, headers: dict) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        name = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        forwarded = headers.get(name, b"").decode("latin-1").split(",")[0].strip()
        return forwarded == value
    return False


def _trusted(origin: tuple[str, str, int]) -> bool:
    scheme, host, port = origin
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        parts = urlsplit(trusted)
        try:
            trusted_port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        except ValueError:
            continue
        # "https://*.example.com" trusts the subdomains, as Django's CSRF check reads it.
        trusted_host = (parts.hostname or "").lstrip("*")
        if parts.scheme.lower() == scheme and trusted_port == port and trusted_host and is_same_domain(host, trusted_host):
            return True
    return False


def _origin_allowed(scope) -> bool:
    headers = dict(scope.get("headers", []))
    raw = headers.get(b"origin")
    if not raw:
        return False
    origin = _origin_tuple(raw.decode("latin-1"))
    if origin is None:
        return False
    if _trusted(origin):
        return True
    # Same origin: the page's origin is this socket's own address (a browser sends the Host it
    # connected to), on a host we serve, over the same scheme.
    host_header = headers.get(b"host", b"").decode("latin-1")
    own = _origin_tuple(f"{'https' if _is_secure(scope, headers) else 'http'}://{host_header}")
    return own is not None and own == origin and validate_host(own[1], settings.ALLOWED_HOSTS)


class _SessionUser:
    """Channels' AuthMiddleware, minus its thread: the session's user is asked on the event loop
    where it can be (PostgreSQL: broker/services/sessions.py; SQLite runs the short call there
    anyway: frontdesk/db.py), and otherwise through our database threads, not Channels' one
    shared thread, where a connecting page waited behind every other call made there. Read-only,
    as the socket's later checks are: a session that no longer logs anyone in is refused, not
    flushed (the next HTTP request does that)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        session_key = scope["session"].session_key
        user = await session_user_on_loop(session_key)
        if user is None and session_key:
            user = await database_sync_to_async(session_user)(session_key)
        return await self.inner({**scope, "user": user or AnonymousUser()}, receive, send)


class _TokenOrSession:
    def __init__(self, inner):
        self.inner = inner
        self.session_auth = CookieMiddleware(SessionMiddleware(_SessionUser(inner)))

    async def __call__(self, scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        if token:
            device = await authenticate_token_on_loop(token) or await database_sync_to_async(authenticate_token)(token)
            scope = {**scope, "user": device.user if device else AnonymousUser(), "device_id": device.pk if device else None,
                     "auth_error": None if device else "This token is not valid; it may have been logged out."}
            return await self.inner(scope, receive, send)
        if not _origin_allowed(scope):
            scope = {**scope, "user": AnonymousUser(), "device_id": None,
                     "auth_error": "Log in with ?token=<token>, or from a page of this server."}
            return await self.inner(scope, receive, send)
        return await self.session_auth({**scope, "device_id": None, "auth_error": None}, receive, send)


def WebsocketAuthMiddleware(inner):
    return _TokenOrSession(inner)
