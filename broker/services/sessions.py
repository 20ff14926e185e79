"""Is a browser session still logged in, and as whom? What a session-authenticated websocket
connects as and re-checks before each frame (docs/protocol.md), as `django.contrib.auth.get_user`
would check it, but read-only: no flush, no key cycling.

`session_user` and `session_user_id` ask through Django (the session store, the authentication
backend), in a database thread. `session_user_on_loop` (at connect) and `session_logs_in_on_loop`
(before each frame) ask from the event loop on PostgreSQL, where a device's sends and receipts
already run (storage/async_sql.py): the session's row and the user's, decoded and compared here.
Through a thread a browser's frame paid for a hop there and back and two queries before its work,
where a device's frame pays for none (docs/performance.md, change 36); its connect waited in
Channels' one shared thread (change 40).
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


def session_user(session_key: str | None):
    """The user a browser session is still logged in as (None once logged out, expired, its user
    deactivated, or made stale by a password change, or if the backend that logged it in is no
    longer in AUTHENTICATION_BACKENDS, as Django's `get_user` refuses it). Sync: call it in a thread."""
    if not session_key:
        return None
    store = _session_store(session_key)
    try:
        user_id = store[SESSION_KEY]
        backend_path = store[BACKEND_SESSION_KEY]
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            return None
        backend = load_backend(backend_path)
    except (KeyError, ImportError):
        return None
    user = backend.get_user(user_id)
    if user is None or not getattr(user, "is_active", True):
        return None
    return user if _hash_matches(user, store.get(HASH_SESSION_KEY)) else None


def session_user_id(session_key: str | None) -> int | None:
    """The id of `session_user`: what a page's socket re-checks. Sync: call it in a thread."""
    user = session_user(session_key)
    return user.pk if user is not None else None


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
    rows = await async_sql.rows_or_none(_session_and_user_statement(), [user_id, session_key, timezone.now()],
                                        asking="a browser session's check")
    if rows is None:
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


@functools.cache
def _session_statement() -> str:
    return f"SELECT session_data FROM {sql.table(Session)} WHERE session_key = %s AND expire_date > %s"


@functools.cache
def _user_statement() -> str:
    return f"SELECT {sql.columns(User, 'u', 'u')} FROM {sql.table(User)} u WHERE u.id = %s AND u.is_active = %s"


async def session_user_on_loop(session_key: str | None) -> User | None:
    """`session_user` asked from the event loop: a browser page's socket connects without a
    database thread. Two statements (the session's row, then its user's: the user's id is inside
    the signed session data). None where it cannot be asked there (see `session_logs_in_on_loop`)
    and whenever the session does not log anyone in (rare, and answered the same by `session_user`):
    then call `session_user` in a thread."""
    if not session_key or not _on_loop_possible():
        return None
    try:
        rows = await async_sql.rows(_session_statement(), [session_key, timezone.now()])
        if not rows:
            return None
        data = _session_store().decode(rows[0][0])
        if data.get(BACKEND_SESSION_KEY) != _MODEL_BACKEND or SESSION_KEY not in data:
            return None
        user_id = User._meta.pk.to_python(data[SESSION_KEY])
        rows = await async_sql.rows(_user_statement(), [user_id, True])
    except (psycopg.Error, ValidationError):
        return None
    if not rows:
        return None
    user = sql.from_row(User, rows[0])
    return user if _hash_matches(user, data.get(HASH_SESSION_KEY)) else None
