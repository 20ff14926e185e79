"""Django's ASGI handler, with the middleware and the view run in one pass in the request's thread.

Django's own handler loads the middleware chain in async mode. Every middleware built on
MiddlewareMixin (all of Django's, django-csp's) then runs each of its hooks through its own
`sync_to_async` call, and a sync-only one (WhiteNoise) sends the rest of the chain back to the
event loop with `async_to_sync`: a REST request crossed between the event loop and its thread
about sixteen times, each crossing a wake-up of a thread (0.1-0.2 ms on a small virtual machine).
Our views are all synchronous, so the chain gains nothing from async mode: loaded in sync mode it
runs exactly as under WSGI, in one crossing: a history page's median fell by a fifth to a third
(docs/performance.md, change 43). Django ticket #37177 is about the same cost; until Django's own
middleware says it is sync-only this subclass does it for our stack.

Everything else is Django's: reading the body, the request_started/finished signals, streaming
the response (asynchronous iterators included, as media downloads use), disconnects.
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        # thread_sensitive: the request's own thread (ThreadSensitiveContext), where Django's
        # signals and the response's close() run too, so its database connections are the ones
        # closed when it ends (frontdesk/request_connections.py).
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
