"""Reading settings from environment variables, each checked as it is read.

A value that does not parse, or is out of range, stops the process at startup with an
ImproperlyConfigured naming the variable, what it holds and what it should hold. Python's own
`int()` would say only "invalid literal for int()", and a lenient yes/no would read a mistyped
`MESSENGER_HTTPS=ture` as off, serving plain-HTTP cookies without a word. An empty value counts as
unset (`VAR=` in a shell or an env file clears a setting back to its default).
"""

import json
import math
import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def raw(name: str) -> str | None:
    """The variable's value, stripped; None when it is unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def refuse(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r}: expected {expected}.")


def env_str(name: str, default: str) -> str:
    value = raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise refuse(name, value, "one of 1, true, yes, on (on) or 0, false, no, off (off)")


def _number(name: str, default, parse, in_range, expected: str):
    value = raw(name)
    if value is None:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise refuse(name, value, expected) from None
    if not in_range(number):
        raise refuse(name, value, expected)
    return number


def env_int(name: str, default: int, *, minimum: int) -> int:
    return _number(name, default, int, lambda number: number >= minimum, f"a whole number of at least {minimum}")


def env_float(name: str, default: float, *, above: float) -> float:
    """A finite number greater than `above`."""
    return _number(name, default, float, lambda number: math.isfinite(number) and number > above,
                   f"a number greater than {above:g}")


def env_choice(name: str, default: str, choices: tuple[str, ...], *, case_sensitive: bool = True) -> str:
    value = raw(name)
    if value is None:
        return default
    for choice in choices:
        if value == choice or (not case_sensitive and value.upper() == choice.upper()):
            return choice
    raise refuse(name, value, "one of " + ", ".join(choices))


def env_list(name: str, default: str) -> list[str]:
    """Comma-separated values, blanks dropped."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_json_object(name: str) -> dict:
    """A JSON object; {} when unset."""
    value = raw(name)
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise refuse(name, value, f"a JSON object ({exc.msg} at character {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise refuse(name, value, "a JSON object, as in {\"bucket_name\": \"media\"}")
    return parsed
