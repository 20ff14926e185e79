import phonenumbers
from django.conf import settings

from broker.errors import InvalidInput


def normalize_phone_number(raw: object, *, field: str = "phone_number") -> str:
    """The number in E.164 form ("+12025550123"), or InvalidInput naming `field`."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("A phone number is required, in international form such as +12025550123.", field=field)
    try:
        parsed = phonenumbers.parse(raw, settings.MESSENGER.get("DEFAULT_REGION"))
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"{raw!r} is not a valid phone number; use international form such as +12025550123.", field=field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
