"""What the developer API does when the broker announces a change (broker.signals, sent after
commit): a user's message to an app's bot opts them in and goes to the app's webhook; a user's
watermark passing the app's messages becomes their delivered/read status events; a message taken
down by a moderator (or deleted by its sender) goes from the apps' webhook events, and apps that had it hear that it is gone
(sent inside the take-down's transaction); one its sender edited takes its new text there, and
apps that had it hear the new text (inside the edit's transaction).

Every message in the system passes through here, so the first question (is an app's bot in this
direct conversation, other than the author?) is answered from the context the broker sends along
(or one small SQL query without it); the rest runs only for apps.
"""

import logging

from django.db import connection, transaction

from developer_api.models import DeveloperApp, OptIn, OutboundMessage
from developer_api.services import apps, webhooks
from storage.models import Conversation, Membership, Message, User

logger = logging.getLogger(__name__)

RANK = {"sent": 0, "delivered": 1, "read": 2}


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def bots_in_direct_conversation(*, conversation_id: int, other_than: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.user_id FROM {_table(Membership)} m "
            f"JOIN {_table(User)} u ON u.id = m.user_id JOIN {_table(Conversation)} c ON c.id = m.conversation_id "
            "WHERE m.conversation_id = %s AND m.user_id <> %s AND u.is_business = %s AND c.kind = %s",
            [conversation_id, other_than, True, Conversation.Kind.DIRECT],
        )
        return [row[0] for row in cursor.fetchall()]


def _bots(*, conversation_id: int, other_than: int, context) -> list[int]:
    """The apps' bots in this direct conversation, from the broker's context when it sent one (the
    common case, no query) or else from the database."""
    if context is None:
        return bots_in_direct_conversation(conversation_id=conversation_id, other_than=other_than)
    if context.kind != Conversation.Kind.DIRECT:
        return []
    return [uid for uid in context.business_member_ids if uid != other_than]


def on_message_stored(sender, message: Message, context=None, **kwargs) -> None:
    if message.sender_id is None or message.kind != Message.Kind.TEXT:
        return
    bot_ids = _bots(conversation_id=message.conversation_id, other_than=message.sender_id, context=context)
    if not bot_ids:
        return
    try:
        author = User.objects.get(pk=message.sender_id)
        for app in DeveloperApp.objects.filter(bot_id__in=bot_ids).select_related("bot"):
            with transaction.atomic():
                apps.opt_in(app=app, user=author, source=OptIn.Source.MESSAGED)
                webhooks.message_received(app=app, message=message, sender=author)
    except Exception:  # the message is committed; a failure here must not fail the sender's request
        logger.exception("developer_api could not handle message %s", message.pk)


def on_message_taken_down(sender, message: Message, **kwargs) -> None:
    # In the take-down's transaction: should this fail, the message is not taken down either.
    webhooks.message_taken_down(message=message)


def on_message_edited(sender, message: Message, **kwargs) -> None:
    # In the edit's transaction, as a take-down's: the apps' copies change with it or not at all.
    webhooks.message_edited(message=message)


def on_watermark_advanced(sender, conversation_id: int, user_id: int, seq: int, status: str, context=None,
                          **kwargs) -> None:
    bot_ids = _bots(conversation_id=conversation_id, other_than=user_id, context=context)
    if not bot_ids:
        return
    try:
        for app in DeveloperApp.objects.filter(bot_id__in=bot_ids):
            passed = OutboundMessage.objects.filter(
                app=app, message__conversation_id=conversation_id, message__seq__lte=seq, failed=False,
                reported_status__in=[s for s, rank in RANK.items() if rank < RANK[status]],
            ).select_related("app").order_by("message__seq")
            for outbound in passed:
                with transaction.atomic():
                    # Conditional, so two processes hearing overlapping watermarks announce it once.
                    changed = OutboundMessage.objects.filter(
                        pk=outbound.pk, reported_status=outbound.reported_status
                    ).update(reported_status=status)
                    if changed:
                        webhooks.status_changed(outbound=outbound, status=status)
    except Exception:
        logger.exception("developer_api could not handle the watermark of conversation %s", conversation_id)
