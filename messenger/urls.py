from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.negotiation import DefaultContentNegotiation

from frontdesk import pages, views

# The split view loads its start-up code as a file, so no inline script is needed; Swagger UI still
# styles its widgets inline (its icons are data: URIs, which every page allows).
api_docs = csp_update({"style-src": [SELF, UNSAFE_INLINE]})(
    SpectacularSwaggerSplitView.as_view(url_name="api-schema")
)

urlpatterns = [
    path("", pages.chat_page, name="home"),
    path("login/", pages.login_page, name="login"),
    path("register/", pages.register_page, name="register"),
    path("logout/", pages.logout_page, name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("frontdesk.api.urls")),
    # The schema alone comes in two formats, YAML and JSON, chosen by Accept (the API answers JSON).
    path("api/schema/", SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation),
         name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),
    # The developer API: owners' and users' calls under /api/v1/, apps' under /developer/v1/, a page.
    path("", include("developer_api.urls")),
]

handler400 = "frontdesk.api.errors.json_bad_request"
handler404 = "frontdesk.api.errors.json_not_found"
handler500 = "frontdesk.api.errors.json_server_error"
