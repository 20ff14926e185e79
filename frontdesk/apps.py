from django.apps import AppConfig
from django.core.signals import request_finished


class FrontdeskConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "frontdesk"

    def ready(self):
        from django.contrib import admin

        from frontdesk.forms import AdminLoginForm
        from frontdesk.request_connections import close_request_thread_connections

        admin.site.login_form = AdminLoginForm  # the admin's login throttled as the others

        request_finished.connect(close_request_thread_connections, dispatch_uid="frontdesk.close_request_connections")
