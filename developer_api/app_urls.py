"""The app-facing API, /developer/v1/ (API key). Also the urlconf its own OpenAPI schema is made from."""

from django.urls import path

from developer_api import views

urlpatterns = [
    path("developer/v1/app", views.AppInfoView.as_view(), name="developer-app"),
    path("developer/v1/messages", views.MessagesView.as_view(), name="developer-messages"),
    path("developer/v1/messages/<str:message_id>", views.MessageDetailView.as_view(), name="developer-message"),
    path("developer/v1/media", views.MediaUploadView.as_view(), name="developer-media-upload"),
    path("developer/v1/media/<int:media_id>", views.MediaDownloadView.as_view(), name="developer-media"),
    path("developer/v1/webhook", views.AppWebhookView.as_view(), name="developer-webhook"),
    path("developer/v1/usage", views.AppUsageView.as_view(), name="developer-usage"),
]
