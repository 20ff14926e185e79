"""API keys for DRF: `Authorization: Bearer <key>` on the app-facing API (/developer/v1/).

The key is looked up in the database on every request (nothing is cached), so a revoked key, an
expired one or a suspended app is refused from the very next request on; a send re-checks it once
more inside its transaction.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from developer_api.errors import KeyNotValid
from developer_api.services import keys


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates as the app's bot account; `request.auth` is the `ApiKey`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != self.keyword.lower() or not raw or " " in raw:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <API key>'.")
        try:
            key = keys.authenticate_key(raw)
        except KeyNotValid as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        # Whether the app may use it (not suspended) is the permission's question: 403, not 401.
        return key.app.bot, key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describes the API key to the developer API's OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of your app (mk_...), made with POST /api/v1/developer/apps/{app_id}/keys.",
        }
