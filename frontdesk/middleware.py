"""Middleware that must come before Django's own."""

from frontdesk.views import healthz


def health_check_middleware(get_response):
    """GET /healthz is answered here, first in the chain, whatever the request's Host and scheme.

    Load balancers and orchestrators probe each server by its address, over plain HTTP, and some
    cannot be told to send another Host (an AWS target group sends the target's IP). Further down,
    CommonMiddleware checks the Host against ALLOWED_HOSTS (400 for an address) and
    SecurityMiddleware redirects plain HTTP to HTTPS, so the probe would fail and take a healthy
    server out of service. The answer says only whether the database answers and reads nothing of
    the request, so any Host may have it."""

    def middleware(request):
        if request.path_info == "/healthz":
            return healthz(request)
        return get_response(request)

    return middleware
