import gc
import os
import sys

import django

from messenger import log_filters
from messenger.env import env_float, env_str, refuse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does

from messenger.http_handler import OneHopASGIHandler  # noqa: E402  (needs Django set up first)

django_asgi_app = OneHopASGIHandler()

log_filters.install()  # no websocket's ?token= in uvicorn's log

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from frontdesk.routing import websocket_urlpatterns  # noqa: E402
from frontdesk.websocket_auth import WebsocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

# The event loop thread and the database thread(s) share the GIL. Every database round trip (SQLite
# releases the GIL for each statement, psycopg while it waits for PostgreSQL) has to win the GIL back
# from a busy event loop, which by default lets go only every 5 ms: a send of ~10 statements then
# took tens of milliseconds under load, and a database thread managed ~100 round trips a second
# (docs/performance.md). Half a millisecond keeps that wait short at a cost of well under 1% CPU.
sys.setswitchinterval(env_float("MESSENGER_SWITCH_INTERVAL_MS", 0.5, above=0) / 1000)

# What is loaded by now (Django, the apps, ~120,000 objects) lives as long as the process: moved out
# of the collector's reach, a full collection no longer walks it (~50 ms each time on the benchmark
# machine, a pause every connection would feel).
gc.collect()
gc.freeze()

# What remains is per connection (~200 objects each: 100,000 with 500 users online), and a full
# collection walks all of it: 50-115 ms with the process stopped, which showed as the p99 of whole
# benchmark steps. Python's default (a young collection every 700 allocations) promotes every
# in-flight message's objects that happen to be alive at that instant, and the promotions soon add up
# to the 25% of the old generation that triggers a full collection. A young generation of 20,000
# lets those die young: no full collection in a minute at 1,200 messages/s (docs/performance.md).
_threshold = env_str("MESSENGER_GC_THRESHOLD", "20000,20,10")
try:
    _parts = [int(part) for part in _threshold.split(",")]
    if any(part < 0 for part in _parts):  # Python would collect on every allocation
        raise ValueError(_threshold)
    gc.set_threshold(*_parts)
except (TypeError, ValueError, OverflowError):
    raise refuse("MESSENGER_GC_THRESHOLD", _threshold, "up to three whole numbers, none negative, as in 20000,20,10") from None
