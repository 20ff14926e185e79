"""Finding people, and the contacts and blocks a user keeps."""

from django.db import IntegrityError, transaction

from broker import ratelimit
from broker.errors import BrokerError, Forbidden, InvalidInput, NotFound
from broker.phone import normalize_phone_number
from broker.text import clean_text
from storage import selectors
from storage.models import Block, Contact, User


def parse_id(value: object, *, field: str) -> int:
    """A positive integer id from JSON or a URL, or InvalidInput naming `field`."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer id.", field=field)
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses, and a short string
    # only: int() refuses more than 4,300 digits, and any id past 19 is out of range anyway.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or value <= 0 or value > 2**62:
        raise InvalidInput(f"{field} must be a positive integer id.", field=field)
    return value


def not_a_member(*, user_id: int, conversation_id: int) -> BrokerError:
    """The refusal of something only a member does (send, type, change members) asked by someone who
    is not in the conversation: to a group they have left and still see in their list, forbidden,
    saying so; to anyone else it is not found, as a conversation that does not exist. Asked only
    once the request is refused, so the members' requests pay nothing for it."""
    if selectors.has_left(user_id=user_id, conversation_id=conversation_id):
        return Forbidden("You are no longer a participant in this group.", field="conversation")
    return NotFound(f"You are not in conversation {conversation_id}.", field="conversation")


def find_user(*, user_id: object) -> User:
    """The active user with this id."""
    user = selectors.active_user(user_id=parse_id(user_id, field="user_id"))
    if user is None:
        raise NotFound(f"There is no user {user_id}.", field="user_id")
    return user


def find_person(*, seeker: User, phone_number: object = None, user_id: object = None) -> User:
    """The active user `seeker` names by exactly one of a phone number or an id, to add as a contact
    or to chat with. Lookups by number are limited per seeker, those of numbers nobody uses more
    tightly (ratelimit.check_lookup_allowed);
    an id names only someone the seeker already knows, or an app's account."""
    if (phone_number is None) == (user_id is None):
        raise InvalidInput("Give exactly one of phone_number or user_id.", field="phone_number")
    if phone_number is None:
        return _known_person(seeker=seeker, user_id=user_id)
    phone = normalize_phone_number(phone_number)
    ratelimit.check_lookup_allowed(user_id=seeker.pk)
    user = selectors.user_by_phone(phone_number=phone)
    if user is None:
        ratelimit.lookup_missed(user_id=seeker.pk)
        raise NotFound(f"Nobody with the phone number {phone} uses messenger.", field="phone_number")
    return user


def _known_person(*, seeker: User, user_id: object) -> User:
    # The answer (a contact, a conversation) shows the person's phone number: were any id good,
    # counting ids up would collect everyone's number, past the lookup limit. Apps' accounts have
    # no number to give away and are found by id by design (docs/developer-api.md).
    person_id = parse_id(user_id, field="user_id")
    person = selectors.active_user(user_id=person_id)
    if person is not None and not strangers_to(seeker, [person]):
        return person
    # The same answer whether the id is nobody's or a stranger's, so ids say nothing either.
    raise NotFound(f"User {person_id} is none of your contacts or the people in your conversations; "
                   "find people by phone number.", field="user_id")


def strangers_to(seeker: User, people: list[User]) -> set[int]:
    """The ids of those of `people` whom `seeker` may not name by id: anyone but themselves, an
    app's account, their contacts and the people in a conversation with them."""
    others = [person.pk for person in people if person.pk != seeker.pk and not person.is_business]
    return set(others) - selectors.known_among(user_id=seeker.pk, other_ids=others) if others else set()


def add_contact(*, owner: User, phone_number: object = None, user_id: object = None, name: object = None) -> Contact:
    """Save someone as a contact. Adding someone already saved renames them: to `name` when it is
    given, "" (or blank) clearing it; without a name the one kept stays."""
    keep_name = name is None
    name = clean_text(name, field="name", max_length=64)  # before the lookup: a bad name costs none
    person = find_person(seeker=owner, phone_number=phone_number, user_id=user_id)
    if person.pk == owner.pk:
        raise InvalidInput("You cannot add yourself as a contact.", field="phone_number" if phone_number else "user_id")
    contact, created = Contact.objects.get_or_create(owner=owner, contact=person, defaults={"name": name})
    if not created and not keep_name and contact.name != name:
        contact.name = name
        contact.save(update_fields=["name"])
    return contact


def remove_contact(*, owner: User, contact_id: object) -> None:
    deleted, _ = Contact.objects.filter(owner=owner, pk=parse_id(contact_id, field="contact")).delete()
    if not deleted:
        raise NotFound("You have no such contact.", field="contact")


def block_user(*, blocker: User, user_id: object) -> Block:
    person = find_user(user_id=user_id)
    if person.pk == blocker.pk:
        raise InvalidInput("You cannot block yourself.", field="user_id")
    try:
        with transaction.atomic():
            block, created = Block.objects.get_or_create(blocker=blocker, blocked=person)
    except IntegrityError:  # a concurrent identical request won
        return Block.objects.get(blocker=blocker, blocked=person)
    if created:
        _presence().block_changed(blocker_id=blocker.pk, other_id=person.pk)
    return block


def unblock_user(*, blocker: User, user_id: object) -> None:
    user_id = parse_id(user_id, field="user_id")
    deleted, _ = Block.objects.filter(blocker=blocker, blocked_id=user_id).delete()
    if not deleted:
        raise NotFound("You have not blocked this user.", field="user_id")
    _presence().block_changed(blocker_id=blocker.pk, other_id=user_id)


def _presence():
    from broker.services import presence  # it finds people by id with this module's parse_id

    return presence
