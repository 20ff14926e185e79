"""broker.services.presence: online counting across connections, last seen, and who hears what."""

import pytest
from django.conf import settings

from broker.errors import CredentialRevoked, NotFound
from broker.publish import user_group
from broker.services import people, presence
from storage.models import User
from tests.factories import UserFactory, direct_conversation, group_conversation, user_with_token

pytestmark = pytest.mark.django_db


def test_a_user_is_online_from_the_first_connection_to_the_last():
    alice = UserFactory()

    assert presence.connection_opened(user_id=alice.pk) is True
    assert presence.connection_opened(user_id=alice.pk) is False
    assert presence.is_online(alice.pk)
    assert presence.connection_closed(user_id=alice.pk) == (False, None)
    assert presence.is_online(alice.pk)
    assert User.objects.get(pk=alice.pk).last_seen is None

    went_offline, last_seen = presence.connection_closed(user_id=alice.pk)

    assert went_offline and last_seen is not None
    assert not presence.is_online(alice.pk)
    assert User.objects.get(pk=alice.pk).last_seen == last_seen


def test_a_close_without_a_counted_open_still_ends_offline():
    # The count lives in the cache, which may have been cleared (restarted) in between.
    alice = UserFactory()

    went_offline, _ = presence.connection_closed(user_id=alice.pk)

    assert went_offline
    assert presence.connection_opened(user_id=alice.pk) is True


def test_online_user_ids_picks_the_connected_ones():
    alice, bob, carol = UserFactory.create_batch(3)
    presence.connection_opened(user_id=alice.pk)
    presence.connection_opened(user_id=carol.pk)

    assert presence.online_user_ids([alice.pk, bob.pk, carol.pk]) == {alice.pk, carol.pk}


def test_presence_reaches_direct_chat_partners_only_and_not_across_blocks():
    alice, bob, carol, dave, erin = UserFactory.create_batch(5)
    direct_conversation(alice, bob)
    direct_conversation(carol, alice)
    direct_conversation(alice, dave)
    group_conversation(alice, erin)
    people.block_user(blocker=dave, user_id=alice.pk)

    assert sorted(presence.presence_audience(user_id=alice.pk)) == sorted([user_group(bob.pk), user_group(carol.pk)])
    assert presence.presence_audience(user_id=erin.pk) == []
    assert presence.presence_audience(user_id=dave.pk) == []


def test_typing_reaches_the_other_members_only():
    alice, bob, carol, mallory = UserFactory.create_batch(4)
    group = group_conversation(alice, bob, carol)

    conversation_id, audience = presence.typing_audience(user=alice, conversation_id=str(group.pk))

    assert conversation_id == group.pk
    assert sorted(audience) == sorted([user_group(bob.pk), user_group(carol.pk)])
    with pytest.raises(NotFound):
        presence.typing_audience(user=mallory, conversation_id=group.pk)


def test_typing_is_not_shown_across_a_block():
    alice, bob, carol = UserFactory.create_batch(3)
    group = group_conversation(alice, bob, carol)
    people.block_user(blocker=bob, user_id=alice.pk)

    assert presence.typing_audience(user=alice, conversation_id=group.pk)[1] == [user_group(carol.pk)]
    assert presence.typing_audience(user=bob, conversation_id=group.pk)[1] == [user_group(carol.pk)]


def test_typing_from_a_logged_out_device_is_refused_as_revoked_not_as_not_found():
    (alice, _), (bob, _) = user_with_token(), user_with_token()
    chat = direct_conversation(alice, bob)
    device_id = alice.devices.get().pk
    assert presence.typing_audience(user=alice, conversation_id=chat.pk, device_id=device_id)[1] == [user_group(bob.pk)]

    alice.devices.all().delete()

    for conversation_id in (chat.pk, chat.pk + 1000):  # in it, and not
        with pytest.raises(CredentialRevoked):
            presence.typing_audience(user=alice, conversation_id=conversation_id, device_id=device_id)


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="scaled out, the count is in Redis")
async def test_the_event_loops_counting_leaves_a_local_cache_to_the_thread():
    """Embedded, the count is in the process's own cache: the loop's way (Redis) declines, and the
    consumer counts through the cache API as before."""
    assert await presence.connection_opened_on_loop(user_id=1) is None
    assert await presence.connection_closed_on_loop(user_id=1) is None
