"""Keeps device tokens out of the servers' logs.

A websocket authenticates with its token in the query string (`/ws/v1/?token=...`,
docs/protocol.md), and uvicorn logs every websocket it accepts or refuses, query string and all, on
its `uvicorn.error` logger at INFO, which `--no-access-log` does not silence: without this every
device's bearer token went to the process's log (journald, say) as it connected.
"""

import logging
import re

_TOKEN = re.compile(r"([?&]token=)[^&#\s\"']+")


def hide_tokens(value):
    return _TOKEN.sub(r"\1[hidden]", value) if isinstance(value, str) else value


class HideTokens(logging.Filter):
    """Replaces the value of any `token=` query parameter in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = hide_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(hide_tokens(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: hide_tokens(arg) for key, arg in record.args.items()}
        return True


def install() -> None:
    """On the loggers the ASGI servers write requests to (uvicorn's; Daphne logs paths without queries)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(HideTokens())
