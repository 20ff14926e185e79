"""Factories for test data: real rows through the same services users go through where it matters."""

import itertools

import factory

from broker.services import accounts
from storage.models import Conversation, Membership, Message, User

_numbers = itertools.count(100)

PASSWORD = "correct horse battery"


def next_phone_number() -> str:
    # +1 202 555 01xx-style fictional numbers, valid for libphonenumber, unique per test run.
    # Tests that spell out a number of their own use area code 212, so the two never collide.
    n = next(_numbers)
    return f"+1202555{n:04d}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    phone_number = factory.LazyFunction(next_phone_number)
    display_name = factory.Sequence(lambda n: f"Person {n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def user_with_token(**kwargs) -> tuple[User, str]:
    """A user logged in on one device, as through POST auth/login."""
    user = UserFactory(**kwargs)
    _, token = accounts.login(phone_number=user.phone_number, password=PASSWORD, device_name="test")
    return user, token


def direct_conversation(a: User, b: User) -> Conversation:
    from broker.services.conversations import direct_conversation_between

    conversation, _ = direct_conversation_between(user=a, peer=b)
    return conversation


def membership(user: User, conversation: Conversation) -> Membership:
    return Membership.objects.get(user=user, conversation=conversation)


def saved_contacts(owner: User, *people: User) -> None:
    """`owner` saves each of `people` as a contact by phone number, as through POST contacts: what
    one does before putting someone one has no conversation with into a group."""
    from broker.services.people import add_contact

    for person in people:
        add_contact(owner=owner, phone_number=person.phone_number)


def group_conversation(creator: User, *others: User, title: str = "Team") -> Conversation:
    """A group made through the broker, as through POST conversations: `creator` is its admin, and
    has the others as contacts first (a group is made of people one knows)."""
    from broker.services.conversations import create_group

    saved_contacts(creator, *(other for other in others if other.pk != creator.pk))
    return create_group(creator=creator, title=title, member_ids=[u.pk for u in others])


_client_ids = itertools.count(1)


def sent_message(sender: User, conversation: Conversation, text: str = "hello") -> Message:
    """A text message sent through the broker, as through POST messages, with a fresh client_id."""
    from broker.services.send import send_message

    message, _ = send_message(
        sender=sender, conversation_id=conversation.pk, client_id=f"factory-{next(_client_ids)}", text=text
    )
    return message


def api_user(**kwargs):
    """A logged-in user and a schema-checked REST client that sends their token: (user, client)."""
    from tests.openapi import SchemaCheckedClient

    user, token = user_with_token(**kwargs)
    return user, SchemaCheckedClient(token)
