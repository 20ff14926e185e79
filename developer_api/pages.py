"""The developer page of the browser UI (/developer/): your apps, their keys (each shown once, on the
page that made it), commercial requests and webhooks. Plain forms, CSRF-protected, no scripts;
every change goes through the same services as the REST API."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from broker.errors import BrokerError
from developer_api.forms import AppForm, CommercialForm, KeyForm, WebhookForm
from developer_api.services import apps, keys, usage, webhooks


def _page(request, *, status: int = 200, app_form: AppForm | None = None, failed: dict | None = None,
          new_key: dict | None = None):
    """The page; `failed` ({"app_id": ..., "<name>_form": form}) shows one app's form with its errors."""
    entries = []
    for app in apps.owned_apps(owner=request.user):
        mine = failed if failed and failed["app_id"] == app.pk else {}
        entries.append({
            "app": app,
            "keys": list(keys.app_keys(app=app)),
            "requests": list(app.commercial_requests.order_by("-requested_at")[:3]),
            "pending_request": app.commercial_requests.filter(status="pending").exists(),
            "usage": usage.usage_report(app=app, months=1),
            "new_key": new_key if new_key and new_key["app_id"] == app.pk else None,
            "key_form": mine.get("key_form") or KeyForm(auto_id=f"app{app.pk}-key-%s"),
            "commercial_form": mine.get("commercial_form") or CommercialForm(auto_id=f"app{app.pk}-commercial-%s"),
            "webhook_form": mine.get("webhook_form") or WebhookForm(auto_id=f"app{app.pk}-webhook-%s",
                                                                    initial={"url": app.webhook_url}),
        })
    context = {"entries": entries, "app_form": app_form or AppForm(), "now": timezone.now()}
    return render(request, "developer_api/apps.html", context, status=status)


@never_cache
@login_required
@require_GET
def apps_page(request):
    return _page(request)


def _owned(request, app_id: int):
    try:
        return apps.owned_app(owner=request.user, app_id=app_id)
    except BrokerError as exc:  # someone else's app, or none: the page is not found
        raise Http404(exc.message) from exc


def _back_to(app_id: int):
    return redirect(reverse("developer-page") + f"#app-{app_id}")


@never_cache
@login_required
@require_POST
def create_app(request):
    form = AppForm(request.POST)
    if form.is_valid():
        try:
            app = apps.create_app(owner=request.user, **form.cleaned_data)
        except BrokerError as exc:
            form.add_broker_error(exc)
        else:
            return _back_to(app.pk)
    return _page(request, status=400, app_form=form)


@never_cache
@login_required
@require_POST
def create_key(request, app_id: int):
    app = _owned(request, app_id)
    form = KeyForm(request.POST, auto_id=f"app{app.pk}-key-%s")
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            key, raw = keys.create_key(app=app, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                                       expires_at=timezone.now() + timedelta(days=days) if days else None)
        except BrokerError as exc:
            form.add_broker_error(exc)
        else:
            # Shown on this answer only (never_cache, not stored in the session), like the REST API.
            return _page(request, status=201, new_key={"app_id": app.pk, "key": key, "raw": raw})
    return _page(request, status=400, failed={"app_id": app.pk, "key_form": form})


@never_cache
@login_required
@require_POST
def revoke_key(request, app_id: int, key_id: int):
    app = _owned(request, app_id)
    try:
        key = keys.owned_key(app=app, key_id=key_id)
    except BrokerError as exc:
        raise Http404(exc.message) from exc
    keys.revoke_key(key=key)
    return _back_to(app.pk)


@never_cache
@login_required
@require_POST
def request_commercial(request, app_id: int):
    app = _owned(request, app_id)
    form = CommercialForm(request.POST, auto_id=f"app{app.pk}-commercial-%s")
    if form.is_valid():
        try:
            apps.request_commercial(app=app, **form.cleaned_data)
        except BrokerError as exc:
            form.add_broker_error(exc)
        else:
            return _back_to(app.pk)
    return _page(request, status=400, failed={"app_id": app.pk, "commercial_form": form})


@never_cache
@login_required
@require_POST
def set_webhook(request, app_id: int):
    app = _owned(request, app_id)
    form = WebhookForm(request.POST, auto_id=f"app{app.pk}-webhook-%s")
    if form.is_valid():
        try:
            webhooks.set_webhook(app=app, **form.cleaned_data)
        except BrokerError as exc:
            form.add_broker_error(exc)
        else:
            return _back_to(app.pk)
    return _page(request, status=400, failed={"app_id": app.pk, "webhook_form": form})
