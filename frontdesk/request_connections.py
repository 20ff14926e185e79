"""HTTP requests served over ASGI close their database connections when they finish.

Django's ASGI handler runs each request's synchronous code in a thread of its own, started for the
request and ended after it (asgiref's ThreadSensitiveContext), and database connections belong to a
thread. With persistent connections (CONN_MAX_AGE) a request's connection outlived its thread,
never to be used again, and was closed only when the garbage collector got round to it: under a
burst of HTTP requests PostgreSQL ran out of connections ("sorry, too many clients already",
hundreds of 500s in the benchmark's history run). Closed as the request ends, it goes back to the
process's pool (MESSENGER_DB_POOL_SIZE, the default with DATABASE_URL) for the next request, or,
without a pool, is closed for good: nothing that could have been reused.
"""

from django.core.handlers.asgi import ASGIHandler
from django.db import connections


def close_request_thread_connections(sender, **kwargs) -> None:
    """request_finished receiver. It runs in the request's own thread (Django sends the signal from
    `response.close()`, or with `asend`, through that thread), so only that request's connections close.

    Other handlers (WSGI, the test client) reuse their threads and keep Django's usual behaviour.
    """
    if isinstance(sender, type) and issubclass(sender, ASGIHandler):
        connections.close_all()
