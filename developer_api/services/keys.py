"""API keys: made at random, shown once, stored as a SHA-256 hash, checked against the database on
every request (and again inside a send), so revoking one works at once."""

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from broker.errors import Forbidden, InvalidInput, NotFound
from broker.services.people import parse_id
from broker.text import clean_text
from developer_api.errors import AppSuspended, InsufficientScope, KeyNotValid
from developer_api.models import ApiKey, DeveloperApp
from developer_api.services import audit
from storage.models import User

KEY_PREFIX = "mk_"
VISIBLE_CHARS = 8  # after "mk_": enough to tell keys apart in a list, far too few to guess the rest


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _clean_scopes(scopes: object) -> list[str]:
    if not isinstance(scopes, list) or not scopes:
        raise InvalidInput(f"scopes must be a non-empty list of: {', '.join(ApiKey.SCOPES)}.", field="scopes")
    unknown = [s for s in scopes if s not in ApiKey.SCOPES]
    if unknown:
        raise InvalidInput(f"Unknown scope {unknown[0]!r}; scopes are {', '.join(ApiKey.SCOPES)}.", field="scopes")
    return [s for s in ApiKey.SCOPES if s in scopes]  # canonical order, no repeats


def create_key(*, app: DeveloperApp, scopes: object, name: object = "",
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for the app; returns the key row and the key itself, which is never shown again."""
    name = clean_text(name, field="name", max_length=64)
    scopes = _clean_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("expires_at must be in the future.", field="expires_at")
    limit = settings.DEVELOPER_API["MAX_KEYS_PER_APP"]
    with transaction.atomic():
        # Keys in use: revoked and expired ones (which work no more) leave room for new ones.
        usable = ApiKey.objects.filter(app=app, revoked_at__isnull=True).exclude(expires_at__lte=timezone.now())
        if usable.count() >= limit:
            raise Forbidden(f"This app has {limit} keys in use already; revoke one first.")
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey.objects.create(app=app, name=name, prefix=raw[: len(KEY_PREFIX) + VISIBLE_CHARS],
                                    key_hash=hash_key(raw), scopes=scopes, expires_at=expires_at)
    return key, raw


def app_keys(*, app: DeveloperApp) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(app=app).order_by("-created_at", "-pk")


def owned_key(*, app: DeveloperApp, key_id: object) -> ApiKey:
    key_id = parse_id(key_id, field="key_id")
    key = ApiKey.objects.filter(app=app, pk=key_id).first()
    if key is None:
        raise NotFound(f"This app has no key {key_id}.", field="key_id")
    return key


def revoke_key(*, key: ApiKey, actor: User | None = None) -> bool:
    """Revoke a key for good: the next request with it, or a send already under way, is refused.

    An operator's revocation (`actor` staff, from the admin) is written to the audit log.
    False if it was revoked already.
    """
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed and actor is not None:
            audit.record(actor=actor, action="key_revoked", target=key, detail={"app": key.app_id})
    key.refresh_from_db()
    return bool(changed)


def authenticate_key(raw: str) -> ApiKey:
    """The active (unrevoked, unexpired) key `raw` names, with its app and bot, or KeyNotValid.
    Whether the app may use it is `check_app`'s question."""
    key = ApiKey.objects.select_related("app", "app__bot", "app__owner").filter(key_hash=hash_key(raw)).first()
    if key is None:
        raise KeyNotValid("This API key is not valid.")
    _check_state(key)
    now = timezone.now()
    # One write a minute at most: a busy key should not turn every request into a write.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def _check_state(key: ApiKey) -> None:
    state = key.state()
    if state != "active":
        raise KeyNotValid(f"This API key has been {state}.")


def check_usable(key: ApiKey) -> None:
    """Raise unless the key (as loaded) may be used now: KeyNotValid, or AppSuspended."""
    _check_state(key)
    check_app(key)


def check_app(key: ApiKey) -> None:
    """AppSuspended when the key's app, its owner or its account is suspended."""
    app = key.app
    if not app.is_active:
        raise AppSuspended(f"The app is suspended ({app.suspended_reason or 'by an operator'}); "
                           "its keys work again once an operator reinstates it.")
    if not app.in_service:
        raise AppSuspended("The app's owner or account is suspended.")


def recheck(key: ApiKey) -> ApiKey:
    """Read the key again from the database and check it: for a request that authenticated before a
    revocation or suspension and reaches a write after it."""
    fresh = ApiKey.objects.select_related("app", "app__bot", "app__owner").filter(pk=key.pk).first()
    if fresh is None:
        raise KeyNotValid("This API key is not valid.")
    check_usable(fresh)
    return fresh


def require_scope(key: ApiKey, scope: str) -> None:
    if scope not in key.scopes:
        raise InsufficientScope(f"This API key lacks the scope {scope!r}.")
