from django.urls import path

from frontdesk.api import media_views, views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="api-register"),
    path("auth/login", views.LoginView.as_view(), name="api-login"),
    path("auth/logout", views.LogoutView.as_view(), name="api-logout"),
    path("me", views.MeView.as_view(), name="api-me"),
    path("me/password", views.PasswordView.as_view(), name="api-password"),
    path("me/devices", views.DevicesView.as_view(), name="api-devices"),
    path("me/devices/<int:device_id>", views.DeviceDetailView.as_view(), name="api-device"),
    path("contacts", views.ContactsView.as_view(), name="api-contacts"),
    path("contacts/<int:contact_id>", views.ContactDetailView.as_view(), name="api-contact"),
    path("blocks/<int:user_id>", views.BlockView.as_view(), name="api-block"),
    path("conversations", views.ConversationsView.as_view(), name="api-conversations"),
    path("conversations/<int:conversation_id>", views.ConversationDetailView.as_view(), name="api-conversation"),
    path("conversations/<int:conversation_id>/members", views.MembersView.as_view(), name="api-members"),
    path("conversations/<int:conversation_id>/members/<int:user_id>", views.MemberDetailView.as_view(), name="api-member"),
    path("conversations/<int:conversation_id>/messages", views.MessagesView.as_view(), name="api-messages"),
    path("conversations/<int:conversation_id>/messages/<int:seq>", views.MessageDetailView.as_view(), name="api-message"),
    path("conversations/<int:conversation_id>/messages/<int:seq>/reaction", views.ReactionView.as_view(),
         name="api-reaction"),
    path("conversations/<int:conversation_id>/pin", views.PinView.as_view(), name="api-pin"),
    path("conversations/<int:conversation_id>/mute", views.MuteView.as_view(), name="api-mute"),
    path("conversations/<int:conversation_id>/search", views.SearchView.as_view(), name="api-search"),
    path("conversations/<int:conversation_id>/forward", views.ForwardView.as_view(), name="api-forward"),
    path("conversations/<int:conversation_id>/read", views.ReadView.as_view(), name="api-read"),
    path("conversations/<int:conversation_id>/delivered", views.DeliveredView.as_view(), name="api-delivered"),
    path("media", media_views.MediaUploadView.as_view(), name="api-media-upload"),
    path("media/<int:media_id>", media_views.MediaDownloadView.as_view(), name="api-media"),
    path("media/<int:media_id>/thumbnail", media_views.MediaThumbnailView.as_view(), name="api-media-thumbnail"),
]
