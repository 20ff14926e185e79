"""System checks (`manage.py check`, and before `migrate`) for what settings cannot check as they
are read: whether the media storage backend an operator named can be loaded with its options."""

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
