import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")
django_asgi_app = get_asgi_application()

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
sys.setswitchinterval(float(os.environ.get("MESSENGER_SWITCH_INTERVAL_MS", "0.5")) / 1000)

# What is loaded by now (Django, the apps, ~120,000 objects) lives as long as the process: moved out
# of the collector's reach, a full collection no longer walks it (~50 ms each time on the benchmark
# machine, a pause every connection would feel).
gc.collect()
gc.freeze()
