"""Spam: users report apps; enough distinct reporters suspend the app's keys on their own, pending
an operator's review. Operators can also suspend people."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from broker import events
from broker.errors import Forbidden, InvalidInput, NotFound
from broker.publish import publish_on_commit, user_group
from broker.services import people
from broker.services.people import parse_id
from broker.text import clean_text
from developer_api.models import DeveloperApp, OutboundMessage, SpamReport
from developer_api.services import audit, webhooks
from developer_api.services.apps import public_app, suspend_app
from storage.models import Device, User

MAX_REASON = 500


def _reported_app(*, app_id: object, user_id: object) -> DeveloperApp:
    if (app_id is None) == (user_id is None):
        raise InvalidInput("Give exactly one of app_id or user_id (the app's account).", field="app_id")
    if app_id is not None:
        return public_app(app_id=app_id)
    user_id = parse_id(user_id, field="user_id")
    app = DeveloperApp.objects.select_related("bot").filter(bot_id=user_id).first()
    if app is None:
        raise NotFound(f"User {user_id} is not an app's account; only apps can be reported here.", field="user_id")
    return app


def report_app(*, reporter: User, app_id: object = None, user_id: object = None, reason: object = "",
               block: bool = False) -> tuple[SpamReport, bool]:
    """Report an app as spam (and block its account, if asked); returns (report, created).

    Only someone the app has messaged can report it, so made-up accounts cannot gang up on an app.
    A second report while the first is open changes nothing.
    """
    app = _reported_app(app_id=app_id, user_id=user_id)
    reason = clean_text(reason, field="reason", max_length=MAX_REASON)
    if not OutboundMessage.objects.filter(app=app, recipient=reporter).exists():
        raise Forbidden("You can report an app once it has sent you a message.", field="app_id")
    if block:
        people.block_user(blocker=reporter, user_id=app.bot_id)
    try:
        with transaction.atomic():
            report, created = SpamReport.objects.get_or_create(
                app=app, reporter=reporter, status=SpamReport.Status.OPEN, defaults={"reason": reason}
            )
    except IntegrityError:  # the same report at the same moment
        report, created = SpamReport.objects.get(app=app, reporter=reporter, status=SpamReport.Status.OPEN), False
    if created:
        _suspend_if_over_threshold(app)
    return report, created


def open_reporter_count(app: DeveloperApp) -> int:
    return SpamReport.objects.filter(app=app, status=SpamReport.Status.OPEN).values("reporter").distinct().count()


def with_open_reporter_counts(queryset: QuerySet[DeveloperApp]) -> QuerySet[DeveloperApp]:
    """The apps, each annotated with `open_reporter_count` (what open_reporter_count() counts), in
    the same query: for lists of many apps."""
    reporters = (SpamReport.objects.filter(app=OuterRef("pk"), status=SpamReport.Status.OPEN).order_by()
                 .values("app").annotate(n=Count("reporter", distinct=True)).values("n"))
    return queryset.annotate(open_reporter_count=Coalesce(Subquery(reporters), 0))


def _suspend_if_over_threshold(app: DeveloperApp) -> None:
    threshold = settings.DEVELOPER_API["SPAM_REPORT_THRESHOLD"]
    count = open_reporter_count(app)
    if count >= threshold:
        suspend_app(app=app, actor=None, needs_review=True,
                    reason=f"{count} users reported it as spam; waiting for an operator's review")


def uphold_reports(*, app: DeveloperApp, actor: User) -> int:
    """An operator agrees with the reports: they are closed and the app stays (or is) suspended."""
    with transaction.atomic():
        upheld = SpamReport.objects.filter(app=app, status=SpamReport.Status.OPEN).update(
            status=SpamReport.Status.UPHELD
        )
        DeveloperApp.objects.filter(pk=app.pk).update(needs_review=False)
        audit.record(actor=actor, action="reports_upheld", target=app, detail={"reports": upheld})
    suspend_app(app=app, actor=actor, reason="spam reports upheld by an operator")
    return upheld


def dismiss_report(*, report: SpamReport, actor: User) -> bool:
    """An operator disagrees with an open report. False if it was decided already (upheld or
    dismissed): a decision stays as it was made."""
    with transaction.atomic():
        changed = SpamReport.objects.filter(pk=report.pk, status=SpamReport.Status.OPEN).update(
            status=SpamReport.Status.DISMISSED
        )
        if changed:
            audit.record(actor=actor, action="report_dismissed", target=report.app, detail={"report": report.pk})
    return bool(changed)


# --- people -----------------------------------------------------------------------------------
def suspend_user(*, user: User, actor: User) -> None:
    """An operator suspends a person: logged out everywhere at once, unable to log in, and their
    apps' keys stop working."""
    if user.pk == actor.pk:
        raise Forbidden("Operators cannot suspend themselves.")
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        device_ids = list(Device.objects.filter(user=user).values_list("pk", flat=True))
        Device.objects.filter(pk__in=device_ids).delete()
        # Every open websocket of theirs is told and closed, as at logout: their devices' and their
        # browser sessions' (which the inactive account no longer logs in), all in the user's group.
        publish_on_commit([user_group(user.pk)], events.session_revoked())
        audit.record(actor=actor, action="user_suspended", target=user, detail={"devices_logged_out": len(device_ids)})
    user.is_active = False


def reinstate_user(*, user: User, actor: User) -> None:
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=True)
        audit.record(actor=actor, action="user_reinstated", target=user)
        # Their apps, or the app whose account they are, hear again what waited meanwhile.
        webhooks.resume(apps=list(DeveloperApp.objects.filter(Q(owner=user) | Q(bot=user))))
    user.is_active = True
