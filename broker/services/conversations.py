"""Starting conversations and changing who is in them.

Membership changes are written into the conversation as system messages, through the same
`append_message` as user messages, so every member sees them in order and offline members catch up.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from broker import events
from broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from broker.publish import publish_on_commit, user_group
from broker.services import media
from broker.services.people import find_person, not_a_member, parse_id, strangers_to
from broker.services.send import append_message, author_has_seen
from broker.text import clean_text
from storage import selectors
from storage.models import Conversation, Departure, Media, Membership, Message, User

MAX_TITLE = 100


def _direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


def get_or_create_direct(*, user: User, phone_number: object = None, user_id: object = None) -> tuple[Conversation, bool]:
    """The one direct conversation between the user and the person they name (people.find_person);
    made on first ask."""
    peer = find_person(seeker=user, phone_number=phone_number, user_id=user_id)
    if peer.pk == user.pk:
        raise InvalidInput("A direct conversation needs another person.", field="phone_number" if phone_number else "user_id")
    return direct_conversation_between(user=user, peer=peer)


def direct_conversation_between(*, user: User, peer: User) -> tuple[Conversation, bool]:
    """The one direct conversation of two different people, made if need be: for callers that
    found `peer` themselves (an app writing to someone who opted in)."""
    key = _direct_key(user.pk, peer.pk)
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(kind=Conversation.Kind.DIRECT, direct_key=key, created_by=user)
            Membership.objects.bulk_create(
                [Membership(conversation=conversation, user_id=uid, role=Membership.Role.MEMBER) for uid in (user.pk, peer.pk)]
            )
    except IntegrityError:  # someone created it at the same moment: theirs is the one
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


def _clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("A group needs a title.", field="title")
    return clean_text(title, field="title", max_length=MAX_TITLE, required=True)


def _people_known_to(actor: User, user_ids: object, *, field: str) -> list[User]:
    """The people `actor` names to put in a group: none may be a stranger to them
    (people.strangers_to), as for starting a direct chat by id. Else anyone's id would do:
    strangers put in a group, and their phone numbers in the answer, for whoever counts ids up. A
    stranger is "not found", as an id nobody has. Nor may any be an app's account (invalid)."""
    if not isinstance(user_ids, list):
        raise InvalidInput(f"{field} must be a list of user ids.", field=field)
    ids = list(dict.fromkeys(parse_id(uid, field=field) for uid in user_ids))
    users = {u.pk: u for u in User.objects.filter(pk__in=ids, is_active=True)}
    strangers = strangers_to(actor, list(users.values()))
    for uid in ids:
        if uid not in users or uid in strangers:
            raise NotFound(f"User {uid} is none of your contacts or the people in your conversations; "
                           "add them as a contact by phone number first.", field=field)
    for uid in ids:
        # An app hears only what is written to it in a direct chat: in a group it would read nothing
        # and acknowledge nothing, and no message there would ever show delivered.
        if users[uid].is_business:
            raise InvalidInput(f"{users[uid].display_name} is an app's account: apps take part in direct chats "
                               "only.", field=field)
    return [users[uid] for uid in ids]


def _check_size(count: int, field: str) -> None:
    limit = settings.MESSENGER["MAX_GROUP_MEMBERS"]
    if count > limit:
        raise InvalidInput(f"A group holds at most {limit} members.", field=field)


def create_group(*, creator: User, title: object, member_ids: object) -> Conversation:
    title = _clean_title(title)
    invited = [u for u in _people_known_to(creator, member_ids, field="member_ids") if u.pk != creator.pk]
    _check_size(len(invited) + 1, "member_ids")
    with transaction.atomic():
        conversation = Conversation.objects.create(kind=Conversation.Kind.GROUP, title=title, created_by=creator)
        Membership.objects.bulk_create(
            [Membership(conversation=conversation, user=creator, role=Membership.Role.ADMIN)]
            + [Membership(conversation=conversation, user=u, role=Membership.Role.MEMBER) for u in invited]
        )
        notice = append_message(
            conversation_id=conversation.pk, sender=None, kind=Message.Kind.SYSTEM,
            text=f"{creator.display_name} created the group \u201c{title}\u201d",
            event={"action": "group_created", "by": creator.pk, "title": title, "members": [u.pk for u in invited]},
        )
        author_has_seen(author=creator, conversation_id=conversation.pk, seq=notice.seq)
        conversation.refresh_from_db()
    return conversation


def _admin_membership(*, actor: User, conversation_id: object,
                      not_a_group: str = "Members can be changed only in a group.") -> Membership:
    conversation_id = parse_id(conversation_id, field="conversation")
    member = selectors.membership(user_id=actor.pk, conversation_id=conversation_id)
    if member is None:
        raise not_a_member(user_id=actor.pk, conversation_id=conversation_id)
    if member.conversation.kind != Conversation.Kind.GROUP:
        raise InvalidInput(not_a_group, field="conversation")
    return member


def _admin_membership_locked(*, actor: User, conversation_id: object, **kwargs) -> Membership:
    """`_admin_membership` read under the conversation's row lock (its write lock on SQLite), within
    the caller's transaction: what it and the caller read next (the actor's role, the members) stays
    true until the caller's changes commit. Read before the lock, two admins removing each other,
    or the same person, would both go ahead (two notices), and a group could outgrow its limit."""
    member = _admin_membership(actor=actor, conversation_id=conversation_id, **kwargs)  # not in it: no lock taken
    list(Conversation.objects.select_for_update().filter(pk=member.conversation_id).values_list("pk"))
    return _admin_membership(actor=actor, conversation_id=member.conversation_id, **kwargs)


def add_members(*, actor: User, conversation_id: object, user_ids: object) -> list[Message]:
    """Admins add people; each addition is a system message. Already-present people are skipped."""
    notices = []
    with transaction.atomic():
        member = _admin_membership_locked(actor=actor, conversation_id=conversation_id)
        if member.role != Membership.Role.ADMIN:
            raise Forbidden("Only group admins can add members.", field="user_ids")
        people = _people_known_to(actor, user_ids, field="user_ids")
        conversation_id = member.conversation_id
        present = set(selectors.member_ids(conversation_id=conversation_id))
        newcomers = [u for u in people if u.pk not in present]
        _check_size(len(present) + len(newcomers), "user_ids")
        for person in newcomers:
            # The newcomer joins first so they hear of their own arrival, then history starts there.
            # Back in the group, they are sent what comes from now on, as a member whose history
            # starts here: what they had not received when they left is no longer sent (their acks
            # move this membership's watermark now, not the departure's).
            Departure.objects.filter(user=person, conversation_id=conversation_id).delete()
            joined = Membership.objects.create(conversation_id=conversation_id, user=person)
            notice = append_message(
                conversation_id=conversation_id, sender=None, kind=Message.Kind.SYSTEM,
                text=f"{actor.display_name} added {person.display_name}",
                event={"action": "member_added", "by": actor.pk, "user": person.pk},
            )
            Membership.objects.filter(pk=joined.pk).update(
                joined_after_seq=notice.seq - 1, delivered_seq=notice.seq - 1, read_seq=notice.seq - 1
            )
            notices.append(notice)
        if notices:
            _members_changed(conversation_id)
            author_has_seen(author=actor, conversation_id=conversation_id, seq=notices[-1].seq)
    return notices


def remove_member(*, actor: User, conversation_id: object, user_id: object) -> Message:
    """Admins remove members; anyone may remove themselves (leave). Announced before they go."""
    target_id = parse_id(user_id, field="user_id")
    with transaction.atomic():
        member = _admin_membership_locked(actor=actor, conversation_id=conversation_id)
        leaving = target_id == actor.pk
        if not leaving and member.role != Membership.Role.ADMIN:
            raise Forbidden("Only group admins can remove members.", field="user_id")
        conversation_id = member.conversation_id
        # Locked: an ack of theirs committing meanwhile would not be in the departure's watermark.
        target = (Membership.objects.select_for_update(of=("self",)).select_related("user")
                  .filter(user_id=target_id, conversation_id=conversation_id).first())
        if target is None:
            raise NotFound(f"User {target_id} is not in this group.", field="user_id")
        name = target.user.display_name
        text = f"{name} left" if leaving else f"{actor.display_name} removed {name}"
        notice = append_message(
            conversation_id=conversation_id, sender=None, kind=Message.Kind.SYSTEM, text=text,
            event={"action": "member_left" if leaving else "member_removed", "by": actor.pk, "user": target_id},
        )
        target.delete()
        _members_changed(conversation_id)
        author_has_seen(author=actor, conversation_id=conversation_id, seq=notice.seq)
        # The group stays in their list as they last saw it, readable up to the notice; their devices
        # that are offline now learn of it at their next connect, with whatever came before it that
        # they had not yet received (catch-up).
        others = Membership.objects.filter(conversation_id=conversation_id).order_by("joined_at", "pk")
        Departure.objects.update_or_create(user_id=target_id, conversation_id=conversation_id, defaults={
            "joined_after_seq": target.joined_after_seq, "delivered_seq": target.delivered_seq,
            "read_seq": target.read_seq, "through_seq": notice.seq, "title": member.conversation.title,
            "left_at": notice.created_at,
            "members": [{"user": m.user_id, "role": m.role, "delivered_seq": m.delivered_seq, "read_seq": m.read_seq}
                        for m in others],
        })
        _keep_an_admin(conversation_id)
    return notice


def delete_chat(*, user: User, conversation_id: object) -> None:
    """Take a group the user has left (or was removed from) off their list: its history and what
    catch-up had still to send of it go with it, for all their devices, which are told at once
    (`conversation.deleted`) rather than at their next fetch of the list. A conversation they are in
    is not deleted: a group is left first, and a direct chat stays."""
    conversation_id = parse_id(conversation_id, field="conversation")
    if Departure.objects.filter(user=user, conversation_id=conversation_id).delete()[0]:
        publish_on_commit([user_group(user.pk)], events.conversation_deleted(conversation_id=conversation_id))
        return
    member = selectors.membership(user_id=user.pk, conversation_id=conversation_id)
    if member is None:
        raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
    if member.conversation.kind == Conversation.Kind.DIRECT:
        raise InvalidInput("A direct conversation cannot be deleted.", field="conversation")
    raise Conflict("You are in this group: leave it first, then delete it.", field="conversation")


def set_group_photo(*, actor: User, conversation_id: object, photo_media_id: object) -> Message | None:
    """A group's admin sets its photo (an image they uploaded, by its media id) or removes it
    (None). The members are told by a system message, {"action": "group_photo_changed", "by",
    "photo": the media id or null}, and see the photo in the conversation from then on; the photo
    replaced goes unless something else carries it. None when the group has that photo already."""
    with transaction.atomic():
        member = _admin_membership_locked(actor=actor, conversation_id=conversation_id,
                                          not_a_group="Only a group has a photo; a direct chat shows the other "
                                                      "person's.")
        if member.role != Membership.Role.ADMIN:
            raise Forbidden("Only group admins can change the group photo.", field="photo_media_id")
        photo = None if photo_media_id is None else media.own_image(user=actor, media_id=photo_media_id,
                                                                       field="photo_media_id")
        notice = _photo_changed(member.conversation, photo=photo, by=actor)
        if notice is not None:
            author_has_seen(author=actor, conversation_id=member.conversation_id, seq=notice.seq)
    return notice


def remove_group_photo(*, conversation_id: int) -> Message | None:
    """An operator removes an offensive group photo (developer_api's admin); the members are told
    it was a moderator. None when the group has none."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            raise NotFound(f"There is no conversation {conversation_id}.", field="conversation")
        return _photo_changed(conversation, photo=None, by=None)


def _photo_changed(conversation: Conversation, *, photo: Media | None, by: User | None) -> Message | None:
    """Store the group's new photo (the row locked by the caller) and write its notice."""
    old_photo_id = conversation.photo_id
    if old_photo_id == (photo.pk if photo else None):
        return None
    Conversation.objects.filter(pk=conversation.pk).update(photo=photo)
    conversation.photo = photo
    media.release_photo_after_commit(old_photo_id)
    if by is None:
        text = "A moderator removed the group photo"
    else:
        text = f"{by.display_name} {'changed' if photo else 'removed'} the group photo"
    return append_message(
        conversation_id=conversation.pk, sender=None, kind=Message.Kind.SYSTEM, text=text,
        event={"action": "group_photo_changed", "by": by.pk if by else None, "photo": photo.pk if photo else None},
    )


ROLES = {Membership.Role.ADMIN.value, Membership.Role.MEMBER.value}


def set_role(*, actor: User, conversation_id: object, user_id: object, role: object) -> Message | None:
    """An admin makes a member an admin, or dismisses an admin (themselves included) back to member;
    each change is a system message. None when the member has that role already. A group keeps an
    admin: its last one is not dismissed."""
    target_id = parse_id(user_id, field="user_id")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {sorted(ROLES)}.", field="role")
    with transaction.atomic():
        member = _admin_membership_locked(actor=actor, conversation_id=conversation_id)
        if member.role != Membership.Role.ADMIN:
            raise Forbidden("Only group admins can make or dismiss admins.", field="role")
        conversation_id = member.conversation_id
        target = Membership.objects.select_related("user").filter(user_id=target_id,
                                                                  conversation_id=conversation_id).first()
        if target is None:
            raise NotFound(f"User {target_id} is not in this group.", field="user_id")
        if target.role == role:
            return None
        admins = Membership.objects.filter(conversation_id=conversation_id, role=Membership.Role.ADMIN)
        if role == Membership.Role.MEMBER and admins.count() == 1:
            raise InvalidInput("A group needs an admin: make someone else admin first.", field="role")
        Membership.objects.filter(pk=target.pk).update(role=role)
        notice = _role_notice(conversation_id, user=target.user, role=role, by=actor)
        author_has_seen(author=actor, conversation_id=conversation_id, seq=notice.seq)
    return notice


def _role_notice(conversation_id: int, *, user: User, role: str, by: User | None) -> Message:
    name = user.display_name
    if role == Membership.Role.ADMIN:
        text = f"{by.display_name} made {name} an admin" if by else f"{name} is now an admin"
    elif by is None or by.pk == user.pk:
        text = f"{name} is no longer an admin"
    else:
        text = f"{by.display_name} dismissed {name} as admin"
    return append_message(
        conversation_id=conversation_id, sender=None, kind=Message.Kind.SYSTEM, text=text,
        event={"action": "admin_added" if role == Membership.Role.ADMIN else "admin_removed",
               "by": by.pk if by else None, "user": user.pk},
    )


def _members_changed(conversation_id: int) -> None:
    """Sends that read the members before this change, and are not stored yet, read them again
    (Conversation.members_version, broker.services.send)."""
    Conversation.objects.filter(pk=conversation_id).update(members_version=F("members_version") + 1)


def _keep_an_admin(conversation_id: int) -> None:
    """The last admin gone, the longest-standing member becomes admin, and everyone is told."""
    remaining = Membership.objects.filter(conversation_id=conversation_id).order_by("joined_at", "pk")
    if remaining.exists() and not remaining.filter(role=Membership.Role.ADMIN).exists():
        oldest = remaining.select_related("user").first()
        oldest.role = Membership.Role.ADMIN
        oldest.save(update_fields=["role"])
        _role_notice(conversation_id, user=oldest.user, role=Membership.Role.ADMIN, by=None)
