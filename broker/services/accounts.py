"""Registration, login and logout: each login is a device with its own revocable bearer token."""

import functools
import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from broker import events, ratelimit
from broker.errors import AuthenticationFailed, Conflict, CredentialRevoked, InvalidInput, NotFound
from broker.phone import normalize_phone_number
from broker.publish import device_group, publish_on_commit, session_group, user_group
from broker.services import media
from broker.services.people import parse_id
from broker.text import check_encodable, clean_text
from storage import async_sql, selectors, sql
from storage.models import Device, User

MAX_DISPLAY_NAME = 64
MAX_ABOUT = 140
MAX_DEVICE_NAME = 64


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text_field(value: object, *, field: str, max_length: int, required: bool = False) -> str:
    return clean_text(value, field=field, max_length=max_length, required=required)


def _password(value: object, field: str = "password") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} is required.", field=field)
    check_encodable(value, field=field)  # a hasher cannot encode an unpaired surrogate
    return value


def _issue_device(user: User, device_name: str) -> tuple[Device, str]:
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(user=user, name=device_name, token_hash=hash_token(token))
    return device, token


def create_account(*, phone_number: object, password: object, display_name: object,
                   client_ip: str | None = None) -> User:
    """Create an account (no device, no token): the browser UI logs it in with a session instead.

    Attempts are limited per client address and per phone number (RateLimited).
    """
    phone = normalize_phone_number(phone_number)
    ratelimit.check_register_allowed(phone_number=phone, client_ip=client_ip)
    name = _text_field(display_name, field="display_name", max_length=MAX_DISPLAY_NAME, required=True)
    password = _password(password)
    candidate = User(phone_number=phone, display_name=name)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="password") from exc
    try:
        with transaction.atomic():
            return User.objects.create_user(phone, password, display_name=name)
    except IntegrityError as exc:
        raise Conflict("An account with this phone number already exists.", field="phone_number") from exc


def register(*, phone_number: object, password: object, display_name: object, device_name: object = "",
             client_ip: str | None = None) -> tuple[User, str]:
    """Create an account and log its first device in; returns the user and the device's token."""
    device = _text_field(device_name, field="device_name", max_length=MAX_DEVICE_NAME)
    with transaction.atomic():
        user = create_account(phone_number=phone_number, password=password, display_name=display_name,
                              client_ip=client_ip)
        _, token = _issue_device(user, device)
    return user, token


def check_password(*, phone_number: object, password: object, client_ip: str | None = None) -> User:
    """The active user with this phone number and password, or AuthenticationFailed.

    Throttled (RateLimited) per client address and per phone number's wrong passwords, before the
    password is looked at, so guessing is slow whatever the guesses.
    """
    phone = normalize_phone_number(phone_number)
    ratelimit.check_login_allowed(phone_number=phone, client_ip=client_ip)
    password = _password(password)
    user = authenticate(phone_number=phone, password=password)
    if user is None:
        ratelimit.login_failed(phone_number=phone)
        raise AuthenticationFailed("Phone number or password is wrong.")
    return user


def login(*, phone_number: object, password: object, device_name: object = "",
          client_ip: str | None = None) -> tuple[User, str]:
    device = _text_field(device_name, field="device_name", max_length=MAX_DEVICE_NAME)
    user = check_password(phone_number=phone_number, password=password, client_ip=client_ip)
    _, token = _issue_device(user, device)
    return user, token


# A device's last use is stored a minute apart at most: a busy device should not turn every read
# into a write.
LAST_USED_EVERY = timedelta(seconds=60)


def authenticate_token(token: str) -> Device | None:
    device = selectors.device_by_token_hash(token_hash=hash_token(token))
    if device is not None:
        now = timezone.now()
        if device.last_used_at is None or now - device.last_used_at > LAST_USED_EVERY:
            Device.objects.filter(pk=device.pk).update(last_used_at=now)
    return device


_DEVICE_COLUMNS = len(Device._meta.concrete_fields)


@functools.cache
def _token_sql() -> str:
    """A token's device with its (active) user, and the device's last use stored if it is a minute
    old, in one statement: a row of the device's columns, then the user's."""
    device, user = sql.table(Device), sql.table(User)
    device_id = f"d_{[f.attname for f in Device._meta.concrete_fields].index('id')}"
    return (f"WITH found AS (SELECT {sql.columns(Device, 'd', 'd')}, {sql.columns(User, 'u', 'u')} "
            f"FROM {device} d JOIN {user} u ON u.id = d.user_id WHERE d.token_hash = %s AND u.is_active = %s), "
            f"used AS (UPDATE {device} SET last_used_at = %s WHERE id = (SELECT {device_id} FROM found) "
            "AND (last_used_at IS NULL OR last_used_at < %s) RETURNING id) "
            "SELECT * FROM found")


async def authenticate_token_on_loop(token: str) -> Device | None:
    """`authenticate_token` from the event loop on PostgreSQL (storage/async_sql.py): a websocket
    connecting with a token needs no database thread. None when that path is off or failed, and
    for a token it does not know (rare, and answered the same by `authenticate_token`): then call
    `authenticate_token`."""
    now = timezone.now()
    rows = await async_sql.rows_or_none(_token_sql(), [hash_token(token), True, now, now - LAST_USED_EVERY],
                                        asking="a token's device")
    if not rows:
        return None
    device = sql.from_row(Device, rows[0][:_DEVICE_COLUMNS])
    device.user = sql.from_row(User, rows[0][_DEVICE_COLUMNS:])
    return device


def logout(*, device: Device) -> None:
    """Revoke one device's token; its open websockets are told and closed.

    The channel layer may drop that event, so sockets also re-check `device_is_valid` (see
    frontdesk.consumers): the deleted row is what counts.
    """
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).delete()
        publish_on_commit([device_group(device.pk)], events.session_revoked())


def devices(*, user: User) -> list[Device]:
    """The user's logged-in devices, the most recently used first."""
    return list(Device.objects.filter(user=user).order_by(F("last_used_at").desc(nulls_last=True), "-created_at", "-pk"))


def log_out_device(*, user: User, device_id: object) -> None:
    """The user logs one of their devices out (a lost phone, say), from any other: as `logout`."""
    device = Device.objects.filter(user=user, pk=parse_id(device_id, field="device")).first()
    if device is None:
        raise NotFound("You have no such device.", field="device")
    logout(device=device)


def change_password(*, user: User, current_password: object, new_password: object,
                    keep_device_id: int | None = None, keep_session_key: str | None = None,
                    client_ip: str | None = None) -> int:
    """Set a new password, given the current one (checked and throttled as a login is), and log out
    every other device: someone who learnt the old password, or holds a lost phone, is out. The
    device making the change (`keep_device_id`) stays; browser sessions other than the caller's
    (`keep_session_key`, which the caller renews) end through their session hash, and their open
    websockets are closed at once (`password_ended_sessions`). The number of devices logged out."""
    current_password = _password(current_password, field="current_password")
    try:
        check_password(phone_number=user.phone_number, password=current_password, client_ip=client_ip)
    except AuthenticationFailed:
        raise InvalidInput("The current password is wrong.", field="current_password") from None
    new_password = _password(new_password, field="new_password")
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="new_password") from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        others = list(Device.objects.filter(user=user).exclude(pk=keep_device_id))
        for device in others:
            logout(device=device)
        password_ended_sessions(user=user, keep_session_key=keep_session_key)
    return len(others)


def device_is_valid(device_id: int) -> bool:
    """Whether the device is still logged in (not logged out, its user not deactivated)."""
    return selectors.device_is_active(device_id=device_id)


async def device_is_valid_on_loop(device_id: int) -> bool | None:
    """`device_is_valid` asked from the event loop on PostgreSQL (storage/async_sql.py); None when
    that path is off or failed: then ask `device_is_valid` in a thread."""
    rows = await async_sql.rows_or_none(*selectors.device_is_active_query(device_id=device_id),
                                        asking="a device's credential check")
    return None if rows is None else bool(rows)


def check_device(*, device_id: int | None,
                 context: selectors.ConversationContext | selectors.TypingAudience | None) -> None:
    """The credential check a websocket makes before each frame, for the services that read a
    conversation's members anyway (sending, receipts, typing): asked in that same query (given
    `device_id` there), or on its own when the user is not a member. Raises CredentialRevoked."""
    if device_id is None:
        return
    active = context.device_active if context is not None else device_is_valid(device_id)
    if not active:
        raise CredentialRevoked()


def session_ended(*, session_key: str | None) -> None:
    """A browser session was logged out: its open websockets are told and closed (as `logout`)."""
    if session_key:
        publish_on_commit([session_group(session_key)], events.session_revoked())


def password_ended_sessions(*, user: User, keep_session_key: str | None = None) -> None:
    """The user's password changed, which ends every browser session of theirs (each holds a hash
    of the old one) but `keep_session_key`'s, the one that set it and is renewed: the open
    websockets of those sessions are told and closed once committed (as `session_ended`), their
    devices' are not. A session's group is named by its key, which only its own requests know, so
    the event goes to the user's group, for the sockets of sessions only. Should it be lost, each
    socket finds out at its next frame or periodic check (the stale hash is what counts)."""
    publish_on_commit([user_group(user.pk)], events.session_revoked(), sessions_only=True,
                      skip_session=session_group(keep_session_key) if keep_session_key else None)


def password_set_by_operator(*, user: User, keep_session_key: str | None = None) -> int:
    """An operator set `user`'s password (account recovery, a taken-over account): as when they set
    it themselves, whoever held the old one is out: every device is logged out and every browser
    session but `keep_session_key` (an operator setting their own, in this session) ends. The
    number of devices logged out."""
    with transaction.atomic():
        devices_out = list(Device.objects.filter(user=user))
        for device in devices_out:
            logout(device=device)
        password_ended_sessions(user=user, keep_session_key=keep_session_key)
    return len(devices_out)


UNSET = object()  # photo_media_id not given (None removes the photo)


def update_profile(*, user: User, display_name: object = None, about: object = None,
                   photo_media_id: object = UNSET) -> User:
    """Change what others see of the user: any of display name, about and photo (an image they
    uploaded, by its media id; None removes it). Everyone who shows them hears of it once
    (`user.updated`); a photo replaced or removed releases its media unless something else carries it."""
    fields = []
    if display_name is not None:
        user.display_name = _text_field(display_name, field="display_name", max_length=MAX_DISPLAY_NAME, required=True)
        fields.append("display_name")
    if about is not None:
        user.about = _text_field(about, field="about", max_length=MAX_ABOUT)
        fields.append("about")
    if not fields and photo_media_id is UNSET:
        return user
    with transaction.atomic():
        if photo_media_id is not UNSET:
            # Read under the row's lock: two devices changing it at once each release the photo the
            # other replaced, not one of them a photo still in use (or none, leaving one behind).
            old_photo_id = User.objects.select_for_update().filter(pk=user.pk).values_list("photo_id", flat=True).get()
            user.photo = None if photo_media_id is None else media.own_image(
                user=user, media_id=photo_media_id, field="photo_media_id")
            if old_photo_id != user.photo_id:
                fields.append("photo")
                media.release_photo_after_commit(old_photo_id)
        if fields:
            user.save(update_fields=fields)
            announce_profile(user)
    return user


def announce_profile(user: User) -> None:
    """Everyone who shows `user`'s name hears of its change, once committed (selectors.profile_audience_ids)."""
    publish_on_commit([user_group(uid) for uid in selectors.profile_audience_ids(user_id=user.pk)],
                      events.user_updated(user))
