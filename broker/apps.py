from django.apps import AppConfig


class BrokerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "broker"

    def ready(self):
        from django.db.models.signals import post_delete

        from broker.services.media import message_deleted
        from storage.models import Message

        # Media deleted with its last message is removed from storage.
        post_delete.connect(message_deleted, sender=Message, dispatch_uid="broker.media.message_deleted")
