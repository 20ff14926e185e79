"""Cleaning the short texts people type (names, titles, about lines, device names, passwords).

JSON can spell an unpaired surrogate ("\\ud800"), which no database can store and no password
hasher can encode: left unchecked it fails deep inside an INSERT as a server error. Every text a
client chooses goes through here (message text through `broker.services.send`) so that it fails
early as the client's error, `invalid`, naming the field.
"""

from broker.errors import InvalidInput


def json_type(value: object) -> str:
    """What a client sent, in JSON's words rather than Python's: for errors that say what a field
    got instead of what it wants."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}.get(
        type(value), "another type")


def check_encodable(value: str, *, field: str) -> None:
    """InvalidInput if `value` holds an unpaired surrogate (it cannot be written as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} contains an unpaired surrogate, which is not valid Unicode.", field=field) from exc


def clean_text(value: object, *, field: str, max_length: int, required: bool = False, strip: bool = True) -> str:
    """A valid short text: a string (None counts as empty), stripped, encodable, no NUL, not too long."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.", field=field)
    if strip:
        value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} is required.", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters.", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters.", field=field)
    check_encodable(value, field=field)
    return value


def duration_text(seconds: int) -> str:
    """A limit of time as a refusal names it: "2 hours", "15 minutes"."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute" + ("s" if minutes != 1 else "")
