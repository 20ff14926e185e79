"""Errors the broker's services raise. Each has a stable machine-readable `code`; the front ends
turn them into an HTTP status and `{"error": {...}}` body, or a websocket `error` event."""


class CredentialRevoked(Exception):
    """The device was logged out (or the session ended, or the account deactivated) while a websocket
    of it was open. Not an error to report: the socket is told `session.revoked` and closed."""


class BrokerError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class InvalidInput(BrokerError):
    code = "invalid"


class AuthenticationFailed(BrokerError):
    code = "authentication_failed"


class NotFound(BrokerError):
    code = "not_found"


class Forbidden(BrokerError):
    code = "forbidden"


class Blocked(Forbidden):
    code = "blocked"


class Conflict(BrokerError):
    code = "conflict"


class TooLarge(BrokerError):
    """An upload over its kind's size limit (HTTP 413); the message names the limit."""

    code = "too_large"


class LengthRequired(BrokerError):
    """An upload sent without a Content-Length (HTTP 411): Django reads a multipart body only up to
    the length declared, so without one the file would look missing."""

    code = "length_required"


class RateLimited(BrokerError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after

    def as_dict(self) -> dict:
        return {**super().as_dict(), "retry_after": self.retry_after}
