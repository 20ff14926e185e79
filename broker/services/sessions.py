"""Is a browser session still logged in? What a session-authenticated websocket re-checks before
each frame (docs/protocol.md), as `django.contrib.auth.get_user` would check it, but read-only: no
flush, no key cycling.

`session_user_id` asks through Django (the session store, the authentication backend), in a
database thread. `session_logs_in_on_loop` asks the same question from the event loop on
PostgreSQL, where a device's sends and receipts already run (storage/async_sql.py): the session's
row and the user's in one statement, decoded and compared here. Through a thread a browser's frame
paid for a hop there and back and two queries before its work, where a device's frame pays for
none (docs/performance.md, change 36).
"""

import functools
from importlib import import_module

import psycopg
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from storage import async_sql, sql
from storage.models import User

# The one setup whose answer a single statement can give: sessions in the database table, and
# users authenticated by Django's model backend (a user who exists and is active). Any other
# session engine or backend is asked through Django, in a thread.
_DATABASE_SESSIONS = "django.contrib.sessions.backends.db"
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _session_store(session_key: str | None = None):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def _hash_matches(user, stored_hash: str) -> bool:
    """The session was made with the user's current password (or under a fallback secret key):
    changing the password ends every other session of the user."""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored_hash or "", h) for h in hashes)


def session_user_id(session_key: str | None) -> int | None:
    """The user a browser session is still logged in as (None once logged out, expired, its user
    deactivated, or made stale by a password change). Sync: call it in a thread."""
    if not session_key:
        return None
    store = _session_store(session_key)
    try:
        user_id = store[SESSION_KEY]
        backend = load_backend(store[BACKEND_SESSION_KEY])
    except (KeyError, ImportError):
        return None
    user = backend.get_user(user_id)
    if user is None or not getattr(user, "is_active", True):
        return None
    return user.pk if _hash_matches(user, store.get(HASH_SESSION_KEY)) else None


def _on_loop_possible() -> bool:
    return async_sql.enabled() and settings.SESSION_ENGINE == _DATABASE_SESSIONS \
        and _MODEL_BACKEND in settings.AUTHENTICATION_BACKENDS


@functools.cache
def _session_and_user_statement() -> str:
    session, user = sql.table(Session), sql.table(User)
    return (f"SELECT s.session_data, u.password, u.is_active FROM {session} s LEFT JOIN {user} u ON u.id = %s "
            "WHERE s.session_key = %s AND s.expire_date > %s")


async def session_logs_in_on_loop(session_key: str, user_id: int) -> bool | None:
    """Whether the browser session `session_key` still logs in user `user_id` (what
    `session_user_id` answers), asked from the event loop. None when this path cannot tell (not
    PostgreSQL with its loop path on, another session engine or backend, a database error): then
    ask `session_user_id` in a thread."""
    if not _on_loop_possible():
        return None
    try:
        rows = await async_sql.rows(_session_and_user_statement(), [user_id, session_key, timezone.now()])
    except psycopg.Error:
        return None
    if not rows:  # logged out (the row is deleted) or expired
        return False
    session_data, password, is_active = rows[0]
    data = _session_store().decode(session_data)  # {} if it was tampered with: not logged in
    if SESSION_KEY not in data or BACKEND_SESSION_KEY not in data:
        return False
    if data[BACKEND_SESSION_KEY] != _MODEL_BACKEND:  # another backend may know users differently
        return None
    if password is None or not is_active:  # the user is gone or deactivated
        return False
    try:
        logged_in_as = User._meta.pk.to_python(data[SESSION_KEY])
    except ValidationError:
        return False
    if logged_in_as != user_id:
        return False
    return _hash_matches(User(pk=user_id, password=password), data.get(HASH_SESSION_KEY))
