"""Registration, login and logout: each login is a device with its own revocable bearer token."""

import hashlib
import secrets

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from broker import events
from broker.errors import AuthenticationFailed, Conflict, InvalidInput
from broker.phone import normalize_phone_number
from broker.publish import device_group, publish_on_commit
from storage import selectors
from storage.models import Device, User

MAX_DISPLAY_NAME = 64
MAX_ABOUT = 140
MAX_DEVICE_NAME = 64


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text_field(value: object, *, field: str, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} is required.", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters.", field=field)
    return value


def _issue_device(user: User, device_name: str) -> tuple[Device, str]:
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(user=user, name=device_name, token_hash=hash_token(token))
    return device, token


def create_account(*, phone_number: object, password: object, display_name: object) -> User:
    """Create an account (no device, no token): the browser UI logs it in with a session instead."""
    phone = normalize_phone_number(phone_number)
    name = _text_field(display_name, field="display_name", max_length=MAX_DISPLAY_NAME, required=True)
    if not isinstance(password, str) or not password:
        raise InvalidInput("password is required.", field="password")
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


def register(*, phone_number: object, password: object, display_name: object, device_name: object = "") -> tuple[User, str]:
    """Create an account and log its first device in; returns the user and the device's token."""
    device = _text_field(device_name, field="device_name", max_length=MAX_DEVICE_NAME)
    with transaction.atomic():
        user = create_account(phone_number=phone_number, password=password, display_name=display_name)
        _, token = _issue_device(user, device)
    return user, token


def check_password(*, phone_number: object, password: object) -> User:
    """The active user with this phone number and password, or AuthenticationFailed."""
    phone = normalize_phone_number(phone_number)
    if not isinstance(password, str) or not password:
        raise InvalidInput("password is required.", field="password")
    user = authenticate(phone_number=phone, password=password)
    if user is None:
        raise AuthenticationFailed("Phone number or password is wrong.")
    return user


def login(*, phone_number: object, password: object, device_name: object = "") -> tuple[User, str]:
    device = _text_field(device_name, field="device_name", max_length=MAX_DEVICE_NAME)
    user = check_password(phone_number=phone_number, password=password)
    _, token = _issue_device(user, device)
    return user, token


def authenticate_token(token: str) -> Device | None:
    device = selectors.device_by_token_hash(token_hash=hash_token(token))
    if device is not None:
        now = timezone.now()
        # One write a minute at most: a busy device should not turn every read into a write.
        if device.last_used_at is None or (now - device.last_used_at).total_seconds() > 60:
            Device.objects.filter(pk=device.pk).update(last_used_at=now)
    return device


def logout(*, device: Device) -> None:
    """Revoke one device's token; its open websockets are told and closed."""
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).delete()
        publish_on_commit([device_group(device.pk)], events.session_revoked())


def update_profile(*, user: User, display_name: object = None, about: object = None) -> User:
    fields = []
    if display_name is not None:
        user.display_name = _text_field(display_name, field="display_name", max_length=MAX_DISPLAY_NAME, required=True)
        fields.append("display_name")
    if about is not None:
        user.about = _text_field(about, field="about", max_length=MAX_ABOUT)
        fields.append("about")
    if fields:
        user.save(update_fields=fields)
    return user
