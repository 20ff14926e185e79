"""System checks (`manage.py check`, and before `migrate`) for what settings cannot check as they
are read: whether the media storage backend an operator named can be loaded with its options, and
whether servers that share Redis also share a secret key."""

from django.conf import settings
from django.core import checks
from django.core.files.storage import storages


@checks.register(checks.Tags.files)
def media_storage_loads(app_configs, **kwargs):
    # Storages are made on first use: without this a mistyped MESSENGER_MEDIA_STORAGE, a backend
    # whose package is not installed, or options it does not take would surface only as the first
    # upload's server error.
    try:
        storages.create_storage(storages.backends["default"])
    except Exception as exc:  # any failure of a third-party constructor is the operator's to read
        return [checks.Error(
            f"The media storage cannot be loaded: {type(exc).__name__}: {exc}",
            hint="Check MESSENGER_MEDIA_STORAGE (a storage class's dotted path, its package installed) "
                 "and MESSENGER_MEDIA_STORAGE_OPTIONS (the options that class takes).",
            id="storage.E001",
        )]
    return []


@checks.register(checks.Tags.security)
def secret_key_shared_when_scaled_out(app_configs, **kwargs):
    # Scaled out (REDIS_URL), processes often run on several machines; without SECRET_KEY each
    # machine makes a key of its own, and a session signed by one is refused by the others: people
    # are logged out at random. Only a warning: one machine's processes share the file's key.
    if settings.REDIS_URL and not settings.SECRET_KEY_FROM_ENVIRONMENT:
        return [checks.Warning(
            "SECRET_KEY is not set while REDIS_URL is: each machine makes and keeps a key of its own "
            "(var/secret_key), and servers on different machines refuse each other's sessions.",
            hint="Set SECRET_KEY, the same for every server process and worker (docs/deployment.md).",
            id="storage.W001",
        )]
    return []
