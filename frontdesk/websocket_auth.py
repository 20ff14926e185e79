"""Who is on the other end of a websocket: a device token (`?token=`) or the browser's session.

Session cookies ride along on any page's request, so a cookie-authenticated socket must come from
one of our own origins (the websocket form of CSRF protection); a token needs no such check.
"""

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host

from broker.services.accounts import authenticate_token


def _origin_allowed(scope) -> bool:
    origin = dict(scope.get("headers", [])).get(b"origin")
    if not origin:
        return False
    host = urlparse(origin.decode("latin-1")).hostname or ""
    return validate_host(host, settings.ALLOWED_HOSTS)


class _TokenOrSession:
    def __init__(self, inner):
        self.inner = inner
        self.session_auth = CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))

    async def __call__(self, scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        if token:
            device = await database_sync_to_async(authenticate_token)(token)
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
