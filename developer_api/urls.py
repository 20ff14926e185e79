"""Every URL of the developer API, included once at the root by messenger/urls.py."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.negotiation import DefaultContentNegotiation

from developer_api import pages, views
from developer_api.schema import APP_API_SETTINGS

# YAML or JSON by Accept, like the client API's schema (messenger/urls.py).
app_schema = SpectacularAPIView.as_view(urlconf="developer_api.app_urls", custom_settings=APP_API_SETTINGS,
                                        content_negotiation_class=DefaultContentNegotiation)
# As for the client API's docs: start-up code from a file, Swagger UI's inline styles allowed.
app_docs = csp_update({"style-src": [SELF, UNSAFE_INLINE]})(
    SpectacularSwaggerSplitView.as_view(url_name="developer-schema")
)


@csrf_exempt  # apps send no CSRF token (their API views are exempt too): a POST gets this 404, not a CSRF page
def app_api_not_found(request, rest=""):
    """Apps parse JSON: an unknown URL under /developer/v1/ answers in the API's error shape."""
    return JsonResponse({"error": {"code": "not_found", "message": f"Nothing at {request.path}."}}, status=404)


urlpatterns = [
    # Owners (client API)
    path("api/v1/developer/apps", views.AppsView.as_view(), name="api-developer-apps"),
    path("api/v1/developer/apps/<int:app_id>", views.AppDetailView.as_view(), name="api-developer-app"),
    path("api/v1/developer/apps/<int:app_id>/keys", views.KeysView.as_view(), name="api-developer-keys"),
    path("api/v1/developer/apps/<int:app_id>/keys/<int:key_id>", views.KeyDetailView.as_view(),
         name="api-developer-key"),
    path("api/v1/developer/apps/<int:app_id>/commercial", views.CommercialView.as_view(),
         name="api-developer-commercial"),
    path("api/v1/developer/apps/<int:app_id>/webhook", views.OwnerWebhookView.as_view(),
         name="api-developer-webhook"),
    path("api/v1/developer/apps/<int:app_id>/webhook/secret", views.WebhookSecretView.as_view(),
         name="api-developer-webhook-secret"),
    path("api/v1/developer/apps/<int:app_id>/usage", views.OwnerUsageView.as_view(), name="api-developer-usage"),
    # Users (client API)
    path("api/v1/apps/<int:app_id>", views.PublicAppView.as_view(), name="api-app"),
    path("api/v1/apps/<int:app_id>/opt-in", views.OptInView.as_view(), name="api-app-opt-in"),
    path("api/v1/reports", views.ReportsView.as_view(), name="api-reports"),
    # Apps (API key), with their own schema
    path("developer/v1/schema/", app_schema, name="developer-schema"),
    path("developer/v1/docs/", app_docs, name="developer-docs"),
    path("", include("developer_api.app_urls")),
    re_path(r"^developer/v1/(?P<rest>.*)$", app_api_not_found),
    # The browser page
    path("developer/", pages.apps_page, name="developer-page"),
    path("developer/apps/new", pages.create_app, name="developer-page-create-app"),
    path("developer/apps/<int:app_id>/keys/new", pages.create_key, name="developer-page-create-key"),
    path("developer/apps/<int:app_id>/keys/<int:key_id>/revoke", pages.revoke_key, name="developer-page-revoke-key"),
    path("developer/apps/<int:app_id>/commercial", pages.request_commercial, name="developer-page-commercial"),
    path("developer/apps/<int:app_id>/webhook", pages.set_webhook, name="developer-page-webhook"),
]
