from django.apps import AppConfig


class FrontdeskConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "frontdesk"
