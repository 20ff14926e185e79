from django.apps import AppConfig


class DeveloperApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "developer_api"
    verbose_name = "Developer API"

    def ready(self):
        from broker import signals
        from developer_api import authentication, receivers  # noqa: F401 (the schema extension registers itself)

        signals.message_stored.connect(receivers.on_message_stored, dispatch_uid="developer_api.message_stored")
        signals.watermark_advanced.connect(receivers.on_watermark_advanced,
                                           dispatch_uid="developer_api.watermark_advanced")
        signals.message_taken_down.connect(receivers.on_message_taken_down,
                                           dispatch_uid="developer_api.message_taken_down")
        signals.message_edited.connect(receivers.on_message_edited, dispatch_uid="developer_api.message_edited")
