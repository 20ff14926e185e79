"""Developer apps: registering one (with its bot account), the commercial tier, suspension and the
users who opted in to hear from it."""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from broker.services import accounts
from broker.services.people import parse_id
from broker.text import clean_text
from developer_api.models import CommercialRequest, DeveloperApp, OptIn, SpamReport
from developer_api.services import audit, webhooks
from storage.models import User

MAX_NAME = 64
MAX_DESCRIPTION = 500
MAX_USE_DESCRIPTION = 2000


def bot_phone_number() -> str:
    """A unique identifier for a bot account in the phone_number column that no person can have.

    "+0" followed by 14 digits: E.164 country codes never start with 0, so libphonenumber refuses
    it and no registration, login or phone number lookup can ever reach or collide with a bot.
    """
    return "+0" + "".join(secrets.choice("0123456789") for _ in range(14))


def _create_bot(*, name: str, description: str) -> User:
    for _ in range(5):
        try:
            with transaction.atomic():
                bot = User(phone_number=bot_phone_number(), display_name=name, about=description[:140],
                           is_business=True)
                bot.set_unusable_password()  # a bot never logs in; it speaks through API keys
                bot.save()
                return bot
        except IntegrityError:  # 10^14 numbers: a clash is unlikely, a second one more so
            continue
    raise Conflict("Could not find a free identifier for the app's account; try again.")


def create_app(*, owner: User, name: object, description: object = "") -> DeveloperApp:
    """Register an app owned by `owner`, with a bot account of its own to message users from."""
    name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
    description = clean_text(description, field="description", max_length=MAX_DESCRIPTION)
    if owner.is_business:
        raise Forbidden("An app's own account cannot register apps.")
    limit = settings.DEVELOPER_API["MAX_APPS_PER_USER"]
    with transaction.atomic():
        if DeveloperApp.objects.filter(owner=owner).count() >= limit:
            raise Forbidden(f"You have {limit} apps already, the most one person may have.")
        bot = _create_bot(name=name, description=description)
        return DeveloperApp.objects.create(
            owner=owner, bot=bot, name=name, description=description, webhook_secret=secrets.token_hex(32)
        )


def update_app(*, app: DeveloperApp, name: object = None, description: object = None) -> DeveloperApp:
    """Rename or re-describe an app; its bot account shows the same name to users."""
    fields = []
    if name is not None:
        app.name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
        fields.append("name")
    if description is not None:
        app.description = clean_text(description, field="description", max_length=MAX_DESCRIPTION)
        fields.append("description")
    if fields:
        with transaction.atomic():
            app.save(update_fields=fields)
            app.bot.display_name, app.bot.about = app.name, app.description[:140]
            app.bot.save(update_fields=["display_name", "about"])
            accounts.announce_profile(app.bot)
    return app


def owned_apps(*, owner: User) -> QuerySet[DeveloperApp]:
    return DeveloperApp.objects.filter(owner=owner).select_related("bot").order_by("created_at", "pk")


def owned_app(*, owner: User, app_id: object) -> DeveloperApp:
    """The owner's app, or NotFound (someone else's app is not found either)."""
    app_id = parse_id(app_id, field="app_id")
    app = DeveloperApp.objects.select_related("bot").filter(pk=app_id, owner=owner).first()
    if app is None:
        raise NotFound(f"You have no app {app_id}.", field="app_id")
    return app


def public_app(*, app_id: object) -> DeveloperApp:
    """Any app, as users see it (to accept or report it)."""
    app_id = parse_id(app_id, field="app_id")
    app = DeveloperApp.objects.select_related("bot").filter(pk=app_id).first()
    if app is None:
        raise NotFound(f"There is no app {app_id}.", field="app_id")
    return app


# --- tiers ------------------------------------------------------------------------------------
def tier_limits(app: DeveloperApp) -> dict:
    return settings.DEVELOPER_API["TIERS"][app.tier]


def request_commercial(*, app: DeveloperApp, use_description: object) -> CommercialRequest:
    """The owner asks for commercial use, saying what for; an operator decides."""
    text = clean_text(use_description, field="use_description", max_length=MAX_USE_DESCRIPTION, required=True)
    if app.tier == DeveloperApp.Tier.COMMERCIAL:
        raise Conflict("This app is commercial already.", field="use_description")
    try:
        with transaction.atomic():
            return CommercialRequest.objects.create(app=app, use_description=text)
    except IntegrityError as exc:
        raise Conflict("This app has a request waiting for an operator already.", field="use_description") from exc


def decide_commercial(*, request: CommercialRequest, approve: bool, actor: User, note: str = "") -> bool:
    """An operator approves (the app becomes commercial) or refuses a pending request.

    False if it was decided already (by someone else in the meantime, say).
    """
    status = CommercialRequest.Status.APPROVED if approve else CommercialRequest.Status.REFUSED
    with transaction.atomic():
        changed = CommercialRequest.objects.filter(pk=request.pk, status=CommercialRequest.Status.PENDING).update(
            status=status, decided_at=timezone.now(), decided_by=actor, decision_note=note[:500]
        )
        if not changed:
            return False
        if approve:
            DeveloperApp.objects.filter(pk=request.app_id).update(tier=DeveloperApp.Tier.COMMERCIAL)
        audit.record(actor=actor, action="commercial_approved" if approve else "commercial_refused",
                     target=request.app, detail={"request": request.pk, "note": note[:500]})
    return True


def set_tier(*, app: DeveloperApp, tier: str, actor: User) -> bool:
    """An operator moves the app to `tier`. False if it was there already (nothing is audited)."""
    with transaction.atomic():
        current = DeveloperApp.objects.select_for_update().filter(pk=app.pk).values_list("tier", flat=True).first()
        if current is None or current == tier:
            return False
        DeveloperApp.objects.filter(pk=app.pk).update(tier=tier)
        if tier == DeveloperApp.Tier.COMMERCIAL:  # the owner's waiting request has its answer
            CommercialRequest.objects.filter(app=app, status=CommercialRequest.Status.PENDING).update(
                status=CommercialRequest.Status.APPROVED, decided_at=timezone.now(), decided_by=actor,
                decision_note="Moved to the commercial tier by an operator.",
            )
        audit.record(actor=actor, action="tier_changed", target=app, detail={"from": current, "to": tier})
    app.tier = tier
    return True


def retire_accounts(*, bot_ids: list[int]) -> None:
    """The apps of these accounts were deleted: nobody finds or logs in as the accounts any more
    (kept, not deleted, for the conversations and messages people have with them)."""
    User.objects.filter(pk__in=bot_ids, is_business=True).update(is_active=False)


# --- suspension -------------------------------------------------------------------------------
def suspend_app(*, app: DeveloperApp, reason: str, actor: User | None, needs_review: bool = False) -> bool:
    """Stop every key of the app at once (403 app_suspended). `actor` None: the system did it.

    False if the app was suspended already.
    """
    with transaction.atomic():
        changed = DeveloperApp.objects.filter(pk=app.pk, status=DeveloperApp.Status.ACTIVE).update(
            status=DeveloperApp.Status.SUSPENDED, suspended_reason=reason[:200], suspended_at=timezone.now(),
            needs_review=needs_review,
        )
        if changed:
            audit.record(actor=actor, action="app_auto_suspended" if actor is None else "app_suspended",
                         target=app, detail={"reason": reason[:200]})
    app.refresh_from_db()
    return bool(changed)


def reinstate_app(*, app: DeveloperApp, actor: User) -> bool:
    """An operator lifts a suspension; the open spam reports are dismissed, so counting starts over.

    False if the app was not suspended: its open reports keep counting toward the threshold.
    """
    with transaction.atomic():
        changed = DeveloperApp.objects.filter(pk=app.pk, status=DeveloperApp.Status.SUSPENDED).update(
            status=DeveloperApp.Status.ACTIVE, suspended_reason="", suspended_at=None, needs_review=False
        )
        if changed:
            dismissed = SpamReport.objects.filter(app=app, status=SpamReport.Status.OPEN).update(
                status=SpamReport.Status.DISMISSED
            )
            audit.record(actor=actor, action="app_reinstated", target=app, detail={"reports_dismissed": dismissed})
            webhooks.resume(apps=[app])
    app.refresh_from_db()
    return bool(changed)


# --- opt-in ----------------------------------------------------------------------------------
def opt_in(*, app: DeveloperApp, user: User, source: str = OptIn.Source.ACCEPTED) -> OptIn:
    """The user agrees to hear from the app (accepting it, or by messaging its bot)."""
    if user.pk == app.bot_id:
        raise InvalidInput("An app cannot opt in to itself.", field="app_id")
    try:
        with transaction.atomic():
            opt, _ = OptIn.objects.get_or_create(app=app, user=user, defaults={"source": source})
    except IntegrityError:  # the same opt-in at the same moment
        opt = OptIn.objects.get(app=app, user=user)
    return opt


def opt_out(*, app: DeveloperApp, user: User) -> None:
    """The user no longer wants messages from the app, until they message it or accept it again."""
    deleted, _ = OptIn.objects.filter(app=app, user=user).delete()
    if not deleted:
        raise NotFound("You have not opted in to this app.", field="app_id")


def has_opted_in(*, app: DeveloperApp, user_id: int) -> bool:
    return OptIn.objects.filter(app=app, user_id=user_id).exists()
