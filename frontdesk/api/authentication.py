from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from broker.services.accounts import authenticate_token


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`, where the token is one logged-in device's."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        token = token.strip()
        if not token or " " in token:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        device = authenticate_token(token)
        if device is None:
            raise exceptions.AuthenticationFailed("This token is not valid; it may have been logged out.")
        return device.user, device

    def authenticate_header(self, request):
        return self.keyword


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer token to the OpenAPI schema."""

    target_class = DeviceTokenAuthentication
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Token from auth/register or auth/login."}
