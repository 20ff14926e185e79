"""The app-facing API (/developer/v1/) is described by a schema of its own, served at
/developer/v1/schema/ (Swagger UI at /developer/v1/docs/); the client API's schema at /api/schema/
leaves it out. The owner- and user-facing calls (/api/v1/developer/..., /api/v1/apps/...,
/api/v1/reports) are part of the client API and its schema, tagged "developer" and "apps"."""

from django.conf import settings

APP_API_PREFIX = "/developer/v1/"

APP_API_SETTINGS = {
    "TITLE": "messenger developer API",
    "DESCRIPTION": (
        "The API third-party apps use to message messenger users who opted in to hear from them. "
        "Authenticate with an API key of your app: `Authorization: Bearer mk_...`. Getting started, "
        "webhooks and their signatures: docs/developer-api.md."
    ),
    "VERSION": "1.0.0",
    "PREPROCESSING_HOOKS": [],
    "ENUM_NAME_OVERRIDES": {
        **settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"],
        "AppMediaKind": ["image", "video", "audio", "document"],
        "AppMessageType": ["text", "image", "video", "audio", "document"],
    },
}


def exclude_app_api(endpoints, **kwargs):
    """Preprocessing hook of the client API's schema: everything but the app-facing API."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(APP_API_PREFIX)]
