"""Tiers and limits: token buckets per key and per app (429 rate_limited with Retry-After), monthly
caps (429 monthly_cap_reached), and the usage record commercial fees are billed from."""

from datetime import UTC, datetime

import pytest

from broker.errors import RateLimited
from developer_api.models import DeveloperApp, MonthlyUsage, OutboundMessage
from developer_api.ratelimit import take_token, take_tokens
from developer_api.services import usage
from tests.developer_api.app_schema import AppClient
from tests.developer_api.conftest import tiers
from tests.developer_api.helpers import app_client, make_app, make_key, opted_in_user, text
from tests.factories import api_user

pytestmark = pytest.mark.django_db

NOW = 1_900_000_000.0  # a fixed clock for the bucket's arithmetic


# --- the token bucket itself ---------------------------------------------------------------------
def test_a_full_bucket_allows_a_burst_then_refuses():
    for _ in range(3):
        take_token(bucket="t1", capacity=3, period=60, now=NOW)

    with pytest.raises(RateLimited) as refused:
        take_token(bucket="t1", capacity=3, period=60, now=NOW)

    assert refused.value.retry_after == 20  # one token comes back every 60/3 seconds


def test_tokens_come_back_at_the_steady_rate():
    for _ in range(3):
        take_token(bucket="t2", capacity=3, period=60, now=NOW)

    take_token(bucket="t2", capacity=3, period=60, now=NOW + 20)  # one token back
    with pytest.raises(RateLimited) as refused:
        take_token(bucket="t2", capacity=3, period=60, now=NOW + 21)
    assert refused.value.retry_after == 19


def test_a_refused_request_takes_no_token():
    for _ in range(2):
        take_token(bucket="t3", capacity=2, period=10, now=NOW)
    for _ in range(5):
        with pytest.raises(RateLimited):
            take_token(bucket="t3", capacity=2, period=10, now=NOW)

    take_token(bucket="t3", capacity=2, period=10, now=NOW + 5)  # refusals did not push it further


def test_an_idle_bucket_refills_but_not_beyond_its_capacity():
    take_token(bucket="t4", capacity=2, period=10, now=NOW)

    for _ in range(2):
        take_token(bucket="t4", capacity=2, period=10, now=NOW + 1000)
    with pytest.raises(RateLimited):
        take_token(bucket="t4", capacity=2, period=10, now=NOW + 1000)


def test_buckets_are_separate():
    take_token(bucket="a", capacity=1, period=60, now=NOW)

    take_token(bucket="b", capacity=1, period=60, now=NOW)
    with pytest.raises(RateLimited):
        take_token(bucket="a", capacity=1, period=60, now=NOW)


def test_a_request_refused_by_one_bucket_takes_nothing_from_the_others():
    key, app = ("key", 2, 60), ("app", 1, 60)
    take_tokens(key, app, now=NOW)

    for _ in range(3):
        with pytest.raises(RateLimited):
            take_tokens(key, app, now=NOW)  # the app's bucket refuses, after the key's gave a token

    take_token(bucket="key", capacity=2, period=60, now=NOW)  # the key's second token is still there
    with pytest.raises(RateLimited):
        take_token(bucket="key", capacity=2, period=60, now=NOW)


# --- through the API -----------------------------------------------------------------------------
def test_each_key_has_its_own_bucket(developer_settings):
    developer_settings(TIERS=tiers(free={"KEY_RATE": (2, 3600), "APP_RATE": (100, 3600)}))
    app = make_app()
    first, second = AppClient(make_key(app)[1]), AppClient(make_key(app)[1])

    answers = [first.get("/developer/v1/app").status_code for _ in range(3)]
    other = second.get("/developer/v1/app")

    assert answers == [200, 200, 429] and other.status_code == 200
    refused = first.get("/developer/v1/app")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["message"] == "Too many requests with this API key: at most 2 every 3600 seconds."
    assert int(refused["Retry-After"]) == refused.json()["error"]["retry_after"] > 0


def test_the_app_bucket_holds_all_its_keys_together(developer_settings):
    developer_settings(TIERS=tiers(free={"KEY_RATE": (100, 3600), "APP_RATE": (3, 3600)}))
    app = make_app()
    clients = [AppClient(make_key(app)[1]) for _ in range(4)]

    answers = [client.get("/developer/v1/app").status_code for client in clients]

    assert answers == [200, 200, 200, 429]
    assert clients[3].get("/developer/v1/app").json()["error"]["message"] == (
        "Too many requests from this app (all its keys): at most 3 every 3600 seconds.")
    _, other_app = app_client()
    assert other_app.get("/developer/v1/app").status_code == 200


def test_a_keys_refused_requests_leave_the_app_bucket_to_its_other_keys(developer_settings):
    developer_settings(TIERS=tiers(free={"KEY_RATE": (2, 3600), "APP_RATE": (5, 3600)}))
    app = make_app()
    noisy, quiet = AppClient(make_key(app)[1]), AppClient(make_key(app)[1])

    answers = [noisy.get("/developer/v1/app").status_code for _ in range(5)]

    assert answers == [200, 200, 429, 429, 429]
    assert [quiet.get("/developer/v1/app").status_code for _ in range(3)] == [200, 200, 429]  # its own 2


def test_commercial_apps_have_higher_limits(developer_settings, admin_user):
    developer_settings(TIERS=tiers(free={"KEY_RATE": (1, 3600)}, commercial={"KEY_RATE": (5, 3600)}))
    app, client = app_client()
    DeveloperApp.objects.filter(pk=app.pk).update(tier="commercial")

    assert [client.get("/developer/v1/app").status_code for _ in range(5)] == [200] * 5


def test_the_free_tier_has_a_monthly_cap(developer_settings):
    developer_settings(TIERS=tiers(free={"MONTHLY_MESSAGES": 2}))
    app, client = app_client()
    user = opted_in_user(app)

    answers = [client.post("/developer/v1/messages", text(user.phone_number, f"m{n}")) for n in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 429]
    error = answers[2].json()["error"]
    assert error["code"] == "monthly_cap_reached" and int(answers[2]["Retry-After"]) == error["retry_after"] > 0
    assert OutboundMessage.objects.count() == 2
    report = client.get("/developer/v1/usage").json()
    assert report["months"][0]["messages"] == 2 and report["remaining_this_month"] == 0


def test_a_failed_send_takes_nothing_from_the_cap(developer_settings):
    from broker.services import people

    developer_settings(TIERS=tiers(free={"MONTHLY_MESSAGES": 1}))
    app, client = app_client()
    blocker, user = opted_in_user(app), opted_in_user(app)
    people.block_user(blocker=blocker, user_id=app.bot_id)

    assert client.post("/developer/v1/messages", text(blocker.phone_number)).json()["messages"][0]["status"] == "failed"
    assert client.post("/developer/v1/messages", text(user.phone_number)).status_code == 201


def test_commercial_messages_are_recorded_as_billable():
    owner, owner_client = api_user()
    app = make_app(owner)
    app_api = AppClient(make_key(app)[1])
    user = opted_in_user(app)
    app_api.post("/developer/v1/messages", text(user.phone_number, "free one"))
    DeveloperApp.objects.filter(pk=app.pk).update(tier="commercial")

    for n in range(3):
        assert app_api.post("/developer/v1/messages", text(user.phone_number, f"paid {n}")).status_code == 201

    records = OutboundMessage.objects.filter(app=app).order_by("pk")
    assert [r.billable for r in records] == [False, True, True, True]
    assert {r.tier for r in records[1:]} == {"commercial"}
    report = owner_client.get(f"/api/v1/developer/apps/{app.pk}/usage").json()
    assert report["monthly_cap"] is None and report["remaining_this_month"] is None
    assert report["months"][0]["messages"] == 4 and report["months"][0]["billable_messages"] == 3


def test_caps_count_per_calendar_month():
    app = make_app()
    january = datetime(2031, 1, 31, 23, 59, tzinfo=UTC)
    february = datetime(2031, 2, 1, 0, 0, tzinfo=UTC)

    usage.count_message(app=app, billable=False, now=january)
    usage.count_message(app=app, billable=True, now=february)

    assert dict(MonthlyUsage.objects.filter(app=app).values_list("month", "messages")) == {
        january.date().replace(day=1): 1, february.date(): 1,
    }
    assert usage.month_of(datetime(2031, 12, 15, tzinfo=UTC)).isoformat() == "2031-12-01"
    assert usage.next_month(usage.month_of(datetime(2031, 12, 15, tzinfo=UTC))).isoformat() == "2032-01-01"


# --- at the same moment --------------------------------------------------------------------------
def in_threads(count: int, work) -> list:
    """Run `work(index)` in `count` threads that start together, each on its own connection."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    start = threading.Barrier(count)

    def run(index):
        try:
            start.wait()
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_requests_never_overdraw_one_bucket():
    def attempt(_):
        try:
            take_token(bucket="crowd", capacity=5, period=3600)
            return True
        except RateLimited:
            return False

    # A refused request returns its token a moment after taking it, so a racing neighbour may be
    # refused too (strict, never generous): at most the capacity passes, and some always do.
    assert 1 <= sum(in_threads(12, attempt)) <= 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_cannot_pass_the_monthly_cap(developer_settings):
    from developer_api.errors import MonthlyCapReached
    from developer_api.services import messaging

    developer_settings(TIERS=tiers(free={"MONTHLY_MESSAGES": 3}))
    app = make_app()
    key, _ = make_key(app)
    user = opted_in_user(app)

    def send(index):
        try:
            messaging.send_message(api_key=key, to=user.phone_number, message_type="text", text={"body": f"{index}"})
            return "sent"
        except MonthlyCapReached:
            return "capped"

    results = in_threads(6, send)

    assert results.count("sent") == 3 and results.count("capped") == 3
    assert MonthlyUsage.objects.get(app=app).messages == 3 and OutboundMessage.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_client_id_sent_twice_at_once_makes_one_message():
    from developer_api.services import messaging
    from storage.models import Message

    app = make_app()
    key, _ = make_key(app)
    user = opted_in_user(app)

    results = in_threads(4, lambda _: messaging.send_message(
        api_key=key, to=user.phone_number, message_type="text", text={"body": "once"}, client_id="same")[0].public_id)

    assert len(set(results)) == 1 and Message.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert MonthlyUsage.objects.get(app=app).messages == 1
