"""Usage: the monthly message caps of each tier, and the monthly report usage fees are billed from.

Every message an app sends is an `OutboundMessage` row (commercial ones marked billable); the
per-month `MonthlyUsage` counter is what caps are enforced on, moved by one conditional UPDATE so
two processes sending at once cannot both take the last message of a cap.
"""

import math
from datetime import UTC, date, datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from developer_api.errors import MonthlyCapReached
from developer_api.models import DeveloperApp, MonthlyUsage
from developer_api.services.apps import tier_limits


def month_of(moment: datetime | None = None) -> date:
    """The first day of the month (UTC) `moment` falls in."""
    moment = timezone.localtime(moment or timezone.now(), UTC)
    return moment.date().replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _seconds_until_next_month(now: datetime) -> int:
    start = datetime.combine(next_month(month_of(now)), datetime.min.time(), tzinfo=UTC)
    return max(1, math.ceil((start - now).total_seconds()))


def count_message(*, app: DeveloperApp, billable: bool, now: datetime | None = None) -> date:
    """Count one message against this month's cap, or raise MonthlyCapReached (nothing counted).

    Runs inside the send's transaction, so a send that fails afterwards takes its count back.
    Returns the month it was counted in.
    """
    now = now or timezone.now()
    month = month_of(now)
    cap = tier_limits(app)["MONTHLY_MESSAGES"]
    if not MonthlyUsage.objects.filter(app=app, month=month).exists():
        try:
            with transaction.atomic():
                MonthlyUsage.objects.create(app=app, month=month)
        except IntegrityError:  # made by a concurrent send: fine
            pass
    counter = MonthlyUsage.objects.filter(app=app, month=month)
    if cap is not None:
        counter = counter.filter(messages__lt=cap)
    changed = counter.update(messages=F("messages") + 1, billable_messages=F("billable_messages") + int(billable))
    if not changed:
        raise MonthlyCapReached(
            f"This app has sent its {cap} messages for this month ({app.tier} tier); "
            "the count starts again on the first of next month (UTC).",
            retry_after=_seconds_until_next_month(now),
        )
    return month


def usage_report(*, app: DeveloperApp, months: int = 12, now: datetime | None = None) -> dict:
    """The app's usage per month, newest first, over the last `months` months (this one included)."""
    current = month_of(now)
    oldest = current
    for _ in range(months - 1):
        oldest = date(oldest.year - (oldest.month == 1), (oldest.month - 2) % 12 + 1, 1)
    rows = {u.month: u for u in MonthlyUsage.objects.filter(app=app, month__gte=oldest)}
    cap = tier_limits(app)["MONTHLY_MESSAGES"]
    report = []
    month = current
    for _ in range(months):
        row = rows.get(month)
        report.append({
            "month": month.strftime("%Y-%m"),
            "messages": row.messages if row else 0,
            "billable_messages": row.billable_messages if row else 0,
        })
        month = date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)
    used = report[0]["messages"]
    return {
        "app_id": app.pk,
        "tier": app.tier,
        "monthly_cap": cap,
        "remaining_this_month": None if cap is None else max(0, cap - used),
        "months": report,
    }
