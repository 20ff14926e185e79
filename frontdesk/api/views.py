"""The client REST API: each view parses the request, calls one broker service or storage selector,
and returns JSON. Errors are raised as broker errors and shaped by `api.errors`."""

from django.conf import settings
from django.contrib.auth import logout as session_logout
from django.contrib.auth import update_session_auth_hash
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from broker import events
from broker.errors import NotFound
from broker.services import (accounts, conversations, deletion, editing, forwarding, muting, people, pinning, reactions,
                             receipts, send)
from frontdesk.api import serializers as s
from frontdesk.api.payloads import contact_payload, conversation_payloads
from storage import selectors

ERRORS = {code: OpenApiResponse(s.ErrorSchema) for code in (400, 401, 403, 404, 409, 413, 415, 429, 503)}


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def conversation_id_of(value: int) -> int:
    # The URL's <int:...> takes any number of digits; one past the database's integer range would
    # fail inside SQLite (a 500), so it is refused as the services refuse it.
    return people.parse_id(value, field="conversation")


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(tags=["auth"], request=s.RegisterRequest, responses={201: s.AuthResponse, **ERRORS})
    def post(self, request):
        data = validated(s.RegisterRequest, request.data)
        user, token = accounts.register(**data, client_ip=request.META.get("REMOTE_ADDR"))
        return Response({"user": events.user_payload(user), "token": token}, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(tags=["auth"], request=s.LoginRequest, responses={200: s.AuthResponse, **ERRORS})
    def post(self, request):
        data = validated(s.LoginRequest, request.data)
        user, token = accounts.login(**data, client_ip=request.META.get("REMOTE_ADDR"))
        return Response({"user": events.user_payload(user), "token": token})


class LogoutView(APIView):
    @extend_schema(tags=["auth"], request=None, responses={204: None, **ERRORS})
    def post(self, request):
        if request.auth is not None:
            accounts.logout(device=request.auth)
        else:
            accounts.session_ended(session_key=request.session.session_key)
            session_logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(tags=["profile"], responses={200: s.UserSchema, **ERRORS})
    def get(self, request):
        return Response(events.user_payload(request.user))

    @extend_schema(tags=["profile"], request=s.ProfileUpdateRequest, responses={200: s.UserSchema, **ERRORS},
                   description="Change your display name, about or photo; whoever shows your name hears of it "
                               "(websocket user.updated). photo_media_id: an image you uploaded (else 400 on "
                               "photo_media_id), or null to remove the photo.")
    def patch(self, request):
        data = validated(s.ProfileUpdateRequest, request.data)
        user = accounts.update_profile(user=request.user, **data)
        return Response(events.user_payload(user))


class PasswordView(APIView):
    @extend_schema(tags=["profile"], request=s.PasswordChangeRequest, responses={200: s.PasswordChangeResponse, **ERRORS},
                   description="A new password, given the current one; every other device is logged out and every "
                               "other browser session ends (their websockets are closed).")
    def post(self, request):
        data = validated(s.PasswordChangeRequest, request.data)
        by_device = request.auth is not None
        logged_out = accounts.change_password(
            user=request.user, **data, keep_device_id=request.auth.pk if by_device else None,
            keep_session_key=None if by_device else request.session.session_key,
            client_ip=request.META.get("REMOTE_ADDR"),
        )
        if not by_device:  # a browser session: it stays logged in (a new key), its others end
            update_session_auth_hash(request, request.user)
        return Response({"devices_logged_out": logged_out})


class DevicesView(APIView):
    @extend_schema(tags=["profile"], responses={200: s.DeviceSchema(many=True), **ERRORS})
    def get(self, request):
        current = request.auth.pk if request.auth is not None else None
        return Response([{"id": d.pk, "name": d.name, "created_at": events.timestamp(d.created_at),
                          "last_used_at": events.timestamp(d.last_used_at), "current": d.pk == current}
                         for d in accounts.devices(user=request.user)])


class DeviceDetailView(APIView):
    @extend_schema(tags=["profile"], responses={204: None, **ERRORS},
                   description="Log one of your devices out: its token stops working, its websockets are closed.")
    def delete(self, request, device_id: int):
        accounts.log_out_device(user=request.user, device_id=device_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactsView(APIView):
    @extend_schema(tags=["contacts"], responses={200: s.ContactSchema(many=True), **ERRORS})
    def get(self, request):
        return Response([contact_payload(c) for c in selectors.contact_list(owner=request.user)])

    @extend_schema(tags=["contacts"], request=s.ContactRequest, responses={201: s.ContactSchema, **ERRORS})
    def post(self, request):
        data = validated(s.ContactRequest, request.data)
        contact = people.add_contact(owner=request.user, **data)
        return Response(contact_payload(contact), status=status.HTTP_201_CREATED)


class ContactDetailView(APIView):
    @extend_schema(tags=["contacts"], responses={204: None, **ERRORS})
    def delete(self, request, contact_id: int):
        people.remove_contact(owner=request.user, contact_id=contact_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockView(APIView):
    @extend_schema(tags=["contacts"], request=None, responses={204: None, **ERRORS})
    def post(self, request, user_id: int):
        people.block_user(blocker=request.user, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=["contacts"], responses={204: None, **ERRORS})
    def delete(self, request, user_id: int):
        people.unblock_user(blocker=request.user, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationsView(APIView):
    @extend_schema(tags=["conversations"], responses={200: s.ConversationSchema(many=True), **ERRORS})
    def get(self, request):
        summaries = selectors.conversation_summaries(user=request.user)
        return Response(conversation_payloads(summaries, viewer_id=request.user.pk))

    @extend_schema(
        tags=["conversations"], request=s.ConversationRequest,
        responses={200: s.ConversationSchema, 201: s.ConversationSchema, **ERRORS},
        description="A direct conversation is made once per pair: asking again answers 200 with the same one.",
    )
    def post(self, request):
        data = validated(s.ConversationRequest, request.data)
        if data["kind"] == "direct":
            conversation, created = conversations.get_or_create_direct(
                user=request.user, phone_number=data.get("phone_number"), user_id=data.get("user_id")
            )
        else:
            conversation = conversations.create_group(
                creator=request.user, title=data.get("title"), member_ids=data.get("member_ids", [])
            )
            created = True
        return self._one(request, conversation.pk, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @staticmethod
    def _one(request, conversation_id: int, code: int = status.HTTP_200_OK):
        conversation_id = conversation_id_of(conversation_id)
        summaries = selectors.conversation_summaries(user=request.user, conversation_id=conversation_id)
        if not summaries:
            raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
        return Response(conversation_payloads(summaries, viewer_id=request.user.pk)[0], status=code)


class ConversationDetailView(APIView):
    @extend_schema(tags=["conversations"], responses={200: s.ConversationSchema, **ERRORS})
    def get(self, request, conversation_id: int):
        return ConversationsView._one(request, conversation_id)

    @extend_schema(tags=["conversations"], responses={204: None, **ERRORS},
                   description="Delete a group you have left from your list (\"Delete chat\"): it is gone for all "
                               "your devices (their websockets get conversation.deleted), as is its history. A "
                               "group you are in must be left first (409); a direct conversation cannot be "
                               "deleted (400).")
    def delete(self, request, conversation_id: int):
        conversations.delete_chat(user=request.user, conversation_id=conversation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=["conversations"], request=s.ConversationUpdateRequest,
                   responses={200: s.ConversationSchema, **ERRORS},
                   description="A group's admin sets its photo (an image they uploaded; else 400 on photo_media_id) "
                               "or removes it (null); the members are told by a system message "
                               "{action: group_photo_changed, by, photo}. Not an admin: 403; a direct "
                               "conversation: 400.")
    def patch(self, request, conversation_id: int):
        data = validated(s.ConversationUpdateRequest, request.data)
        conversations.set_group_photo(actor=request.user, conversation_id=conversation_id,
                                      photo_media_id=data["photo_media_id"])
        return ConversationsView._one(request, conversation_id)


class MembersView(APIView):
    @extend_schema(tags=["conversations"], request=s.MembersAddRequest, responses={200: s.ConversationSchema, **ERRORS})
    def post(self, request, conversation_id: int):
        data = validated(s.MembersAddRequest, request.data)
        conversations.add_members(actor=request.user, conversation_id=conversation_id, user_ids=data["user_ids"])
        return ConversationsView._one(request, conversation_id)

    @extend_schema(tags=["conversations"], request=s.MemberRemoveRequest, responses={204: None, **ERRORS},
                   description="Admins remove a member; anyone may remove themselves to leave.")
    def delete(self, request, conversation_id: int):
        user_id = validated(s.MemberRemoveRequest, request.data)["user_id"]
        conversations.remove_member(actor=request.user, conversation_id=conversation_id, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberDetailView(APIView):
    @extend_schema(tags=["conversations"], request=s.MemberRoleRequest, responses={200: s.ConversationSchema, **ERRORS},
                   description="Admins make a member an admin or dismiss an admin; each change is a system message.")
    def patch(self, request, conversation_id: int, user_id: int):
        role = validated(s.MemberRoleRequest, request.data)["role"]
        conversations.set_role(actor=request.user, conversation_id=conversation_id, user_id=user_id, role=role)
        return ConversationsView._one(request, conversation_id)

    @extend_schema(tags=["conversations"], responses={204: None, **ERRORS}, operation_id="v1_conversations_member_destroy",
                   description="The same as DELETE members with {user_id} in the body.")
    def delete(self, request, conversation_id: int, user_id: int):
        conversations.remove_member(actor=request.user, conversation_id=conversation_id, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessagesView(APIView):
    @extend_schema(
        tags=["messages"],
        parameters=[
            OpenApiParameter("before_seq", int, description="Page back: messages with a smaller seq."),
            OpenApiParameter("after_seq", int, description="Catch up: messages with a larger seq."),
            OpenApiParameter("limit", int, description="At most this many (1-200, default 50)."),
        ],
        responses={200: s.MessagePageSchema, **ERRORS},
    )
    def get(self, request, conversation_id: int):
        query = validated(s.HistoryQuery, request.query_params)
        conversation_id = conversation_id_of(conversation_id)
        page = selectors.member_history_page(
            user_id=request.user.pk, conversation_id=conversation_id, before_seq=query.get("before_seq"),
            after_seq=query.get("after_seq"), limit=min(query["limit"], settings.MESSENGER["HISTORY_PAGE_MAX"]),
        )
        if page is None:
            raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
        watermarks = events.Watermarks(page.members)
        results = [events.message_payload(m, status=watermarks.status_of(m)) for m in page.messages]
        return Response({"results": results, "has_more": page.has_more})

    @extend_schema(
        tags=["messages"], request=s.MessageSendRequest,
        responses={201: s.MessageSchema, 200: s.MessageSchema, **ERRORS},
        description="201 for a new message; 200 with the earlier message when its client_id was sent before.",
    )
    def post(self, request, conversation_id: int):
        data = validated(s.MessageSendRequest, request.data)
        message, created = send.send_message(
            sender=request.user, conversation_id=conversation_id, client_id=data["client_id"], text=data.get("text"),
            media_id=data.get("media_id"), reply_to=data.get("reply_to"),
        )
        if created:
            return Response(events.message_payload(message), status=status.HTTP_201_CREATED)
        selectors.attach_reactions([message])  # a retry's message may have some by now
        return Response(events.message_payload(message, status=send.current_status(message)))


class SearchView(APIView):
    @extend_schema(
        tags=["messages"],
        parameters=[OpenApiParameter("q", str, required=True, description="What to look for (1 to 100 characters)."),
                    OpenApiParameter("before_seq", int, description="The next page: matches older than this seq."),
                    OpenApiParameter("limit", int, description="At most this many (1 to 50; 20)")],
        responses={200: s.MessagePageSchema, **ERRORS},
        description="The messages of the conversation you can see whose text or caption contains q, in any case, "
                    "newest first, as GET messages gives them (of a group you have left, up to your going); "
                    "has_more: older ones match too (ask again with before_seq: the last one's seq).",
    )
    def get(self, request, conversation_id: int):
        query = validated(s.SearchQuery, request.query_params)
        conversation_id = conversation_id_of(conversation_id)
        page = selectors.search_history(user_id=request.user.pk, conversation_id=conversation_id, query=query["q"],
                                        before_seq=query.get("before_seq"), limit=query["limit"])
        if page is None:
            raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
        watermarks = events.Watermarks(page.members)
        return Response({"results": [events.message_payload(m, status=watermarks.status_of(m)) for m in page.messages],
                         "has_more": page.has_more})


class ForwardView(APIView):
    @extend_schema(
        tags=["messages"], request=s.ForwardRequest, responses={201: s.MessageSchema, 200: s.MessageSchema, **ERRORS},
        description="Send on to this conversation a message you can see in another (or this one): a new message of "
                    "yours with its text and media, `forwarded: true`. 201 for a new message; 200 with the earlier "
                    "one for a client_id sent before. 404 on forward.conversation for a chat you are not in, on "
                    "forward.seq for no message there you can see; 400 on forward.seq for a system notice or a "
                    "deleted message. The rest as any send (membership, blocks, limits).",
    )
    def post(self, request, conversation_id: int):
        data = validated(s.ForwardRequest, request.data)
        message, created = forwarding.forward_message(sender=request.user, conversation_id=conversation_id,
                                                      client_id=data["client_id"], source=data["forward"])
        if created:
            return Response(events.message_payload(message), status=status.HTTP_201_CREATED)
        return Response(events.message_payload(message, status=send.current_status(message)))


class MessageDetailView(APIView):
    @extend_schema(tags=["messages"], request=s.MessageEditRequest, responses={200: s.MessageSchema, **ERRORS},
                   operation_id="v1_conversations_message_partial_update",
                   description="Edit the text (or a media message's caption) of your own message, within "
                               "MESSENGER_EDIT_SECONDS (15 minutes) of sending it: 200 with the message as it now "
                               "is, `edited_at` set. The members are told by a system message `{action: "
                               "message_edited, seq, by}`. The same text again: 200, nothing changes. 403 on seq "
                               "for someone else's message, a deleted one or one past that time.")
    def patch(self, request, conversation_id: int, seq: int):
        text = validated(s.MessageEditRequest, request.data)["text"]
        message, _ = editing.edit_message(user=request.user, conversation_id=conversation_id, seq=seq, text=text)
        selectors.attach_reactions([message])
        return Response(events.message_payload(message, status=send.current_status(message)))

    @extend_schema(tags=["messages"], responses={204: None, **ERRORS}, operation_id="v1_conversations_message_destroy",
                   description="Delete your own message for everyone, within MESSENGER_DELETE_FOR_EVERYONE_SECONDS "
                               "(2 days) of sending it; a group's admins delete any member's the same way. It keeps "
                               "its seq and becomes `removed`; the members are told by a system message "
                               "`{action: message_deleted, seq, by}`. Again: 204, nothing changes.")
    def delete(self, request, conversation_id: int, seq: int):
        deletion.delete_for_everyone(user=request.user, conversation_id=conversation_id, seq=seq)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReactionView(APIView):
    @extend_schema(tags=["messages"], request=s.ReactionRequest, responses={200: s.MessageSchema, **ERRORS},
                   description="React to a person's message with one emoji, replacing your reaction to it if any: "
                               "200 with the message and its reactions. Every member's devices are told "
                               "(message.reaction). 400 on emoji for anything but a single emoji; 403 on seq for a "
                               "system message or a deleted one; 403 on conversation in a group you have left.")
    def put(self, request, conversation_id: int, seq: int):
        emoji = validated(s.ReactionRequest, request.data)["emoji"]
        message = reactions.react(user=request.user, conversation_id=conversation_id, seq=seq, emoji=emoji)
        return Response(events.message_payload(message, status=send.current_status(message)))

    @extend_schema(tags=["messages"], responses={204: None, **ERRORS}, operation_id="v1_conversations_reaction_destroy",
                   description="Take your reaction away (none: 204 and nothing changes); the members are told.")
    def delete(self, request, conversation_id: int, seq: int):
        reactions.unreact(user=request.user, conversation_id=conversation_id, seq=seq)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MuteView(APIView):
    @extend_schema(tags=["conversations"], request=s.MuteRequest, responses={200: s.ConversationSchema, **ERRORS},
                   description="Mute the conversation for duration seconds, or until you unmute it (null): its "
                               "messages still arrive and count as unread, but your devices do not notify you of "
                               "them. Replaces a mute already there; your other devices are told "
                               "(conversation.muted). A group you have left: 403.")
    def put(self, request, conversation_id: int):
        data = validated(s.MuteRequest, request.data)
        muting.mute(user=request.user, conversation_id=conversation_id, duration=data["duration"])
        return ConversationsView._one(request, conversation_id)

    @extend_schema(tags=["conversations"], responses={204: None, **ERRORS},
                   description="Unmute the conversation (again, 204 and nothing changes); your other devices are told.")
    def delete(self, request, conversation_id: int):
        muting.unmute(user=request.user, conversation_id=conversation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PinView(APIView):
    @extend_schema(tags=["conversations"], request=None, responses={200: s.ConversationSchema, **ERRORS},
                   description="Pin the conversation to the top of your list (again: it stays where it is), on all "
                               "your devices (conversation.pinned). At most 3 at once: 409 on conversation for a "
                               "fourth. A group you have left: 403.")
    def put(self, request, conversation_id: int):
        pinning.pin(user=request.user, conversation_id=conversation_id)
        return ConversationsView._one(request, conversation_id)

    @extend_schema(tags=["conversations"], responses={204: None, **ERRORS},
                   description="Unpin it (again: 204 and nothing changes); your devices are told.")
    def delete(self, request, conversation_id: int):
        pinning.unpin(user=request.user, conversation_id=conversation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadView(APIView):
    @extend_schema(tags=["messages"], request=s.WatermarkRequest, responses={204: None, **ERRORS},
                   description="Everything up to seq has been read (and so delivered). Never moves backwards.")
    def post(self, request, conversation_id: int):
        data = validated(s.WatermarkRequest, request.data)
        receipts.mark_read(user=request.user, conversation_id=conversation_id, seq=data["seq"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveredView(APIView):
    @extend_schema(tags=["messages"], request=s.WatermarkRequest, responses={204: None, **ERRORS},
                   description="Everything up to seq has reached this user's device (the REST form of `ack`).")
    def post(self, request, conversation_id: int):
        data = validated(s.WatermarkRequest, request.data)
        receipts.mark_delivered(user=request.user, conversation_id=conversation_id, seq=data["seq"])
        return Response(status=status.HTTP_204_NO_CONTENT)
