"""The browser UI's pages: thin views over the same broker services the API uses.

The chat page itself is one template and a JavaScript module that speaks the client protocol
(REST with the session cookie and CSRF header, the websocket with the session cookie).
"""

from django.conf import settings
from django.contrib.auth import login as session_login
from django.contrib.auth import logout as session_logout
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST

from broker import events
from broker.errors import BrokerError, RateLimited
from broker.services import accounts
from frontdesk.forms import LoginForm, RegisterForm
from storage import selectors


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _render_form(request, template: str, context: dict, form, refused: RateLimited | None):
    status = 429 if refused else 400 if form.errors else 200
    response = render(request, template, context, status=status)
    if refused:
        response["Retry-After"] = str(refused.retry_after)
    return response


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return reverse("home")


@never_cache
@require_http_methods(["GET", "POST"])
def login_page(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect("home")
    form = LoginForm(request.POST or None)
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.check_password(**form.cleaned_data, client_ip=_client_ip(request))
        except BrokerError as exc:
            refused = exc if isinstance(exc, RateLimited) else None
            form.add_broker_error(exc)
        else:
            session_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_next_url(request))
    context = {"form": form, "next": request.GET.get("next", "")}
    return _render_form(request, "frontdesk/login.html", context, form, refused)


@never_cache
@require_http_methods(["GET", "POST"])
def register_page(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect("home")
    form = RegisterForm(request.POST or None)
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.create_account(**form.cleaned_data, client_ip=_client_ip(request))
        except BrokerError as exc:
            refused = exc if isinstance(exc, RateLimited) else None
            form.add_broker_error(exc)
        else:
            session_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return _render_form(request, "frontdesk/register.html", {"form": form}, form, refused)


@require_POST
def logout_page(request):
    accounts.session_ended(session_key=request.session.session_key)  # its open websockets close
    session_logout(request)
    return redirect("login")


@never_cache
@ensure_csrf_cookie
@require_http_methods(["GET"])
def chat_page(request):
    """The chat app when logged in; otherwise the login page."""
    if not request.user.is_authenticated:
        return redirect("login")
    boot = {
        "me": events.user_payload(request.user),
        "blocked": selectors.blocked_user_ids(blocker_id=request.user.pk),
        "api": "/api/v1/",
        "websocket": "/ws/v1/",
        "edit_seconds": settings.MESSENGER["EDIT_SECONDS"],
    }
    return render(request, "frontdesk/chat.html", {"boot": boot})
