"""Errors of the developer API. They are broker errors with codes of their own, so the project's
one exception handler gives them their HTTP status and `{"error": {...}}` body."""

from broker.errors import AuthenticationFailed, Forbidden, InvalidInput, RateLimited


class KeyNotValid(AuthenticationFailed):
    """The API key is unknown, revoked or expired (401 authentication_failed)."""


class AppSuspended(Forbidden):
    code = "app_suspended"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class NotOptedIn(Forbidden):
    code = "not_opted_in"


class UnsupportedType(InvalidInput):
    code = "unsupported_type"


class WebhookVerificationFailed(InvalidInput):
    code = "webhook_verification_failed"


class MonthlyCapReached(RateLimited):
    code = "monthly_cap_reached"
