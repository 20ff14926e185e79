import pytest

from tests.developer_api.helpers import Receiver


@pytest.fixture
def receiver(settings):
    """An HTTP receiver on 127.0.0.1, which the server may call in tests."""
    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}
    with Receiver() as running:
        yield running


@pytest.fixture
def developer_settings(settings):
    """Change DEVELOPER_API entries for one test: developer_settings(SPAM_REPORT_THRESHOLD=2)."""
    def change(**entries):
        settings.DEVELOPER_API = {**settings.DEVELOPER_API, **entries}
    return change


def tiers(free: dict | None = None, commercial: dict | None = None) -> dict:
    from django.conf import settings

    current = settings.DEVELOPER_API["TIERS"]
    return {"free": {**current["free"], **(free or {})}, "commercial": {**current["commercial"], **(commercial or {})}}


@pytest.fixture(autouse=True)
def generous_rate_limits(settings):
    """Tests make many calls with one key; the rate-limit tests set small buckets of their own."""
    settings.DEVELOPER_API = {**settings.DEVELOPER_API, "TIERS": tiers(
        free={"KEY_RATE": (1000, 60), "APP_RATE": (1000, 60)},
        commercial={"KEY_RATE": (1000, 60), "APP_RATE": (1000, 60)},
    )}
