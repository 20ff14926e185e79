"""Response bodies of the developer endpoints (their shapes are declared in serializers.py)."""

from broker import events
from developer_api.models import ApiKey, CommercialRequest, DeveloperApp, SpamReport


def app_payload(app: DeveloperApp) -> dict:
    return {
        "id": app.pk,
        "name": app.name,
        "description": app.description,
        "tier": app.tier,
        "status": app.status,
        "suspended_reason": app.suspended_reason,
        "bot": events.user_payload(app.bot),
        "webhook_url": app.webhook_url or None,
        "created_at": events.timestamp(app.created_at),
    }


def key_payload(key: ApiKey, *, raw: str | None = None) -> dict:
    payload = {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "state": key.state(),
        "created_at": events.timestamp(key.created_at),
        "expires_at": events.timestamp(key.expires_at),
        "revoked_at": events.timestamp(key.revoked_at),
        "last_used_at": events.timestamp(key.last_used_at),
    }
    if raw is not None:
        payload["key"] = raw
    return payload


def commercial_request_payload(request: CommercialRequest) -> dict:
    return {
        "id": request.pk,
        "status": request.status,
        "use_description": request.use_description,
        "requested_at": events.timestamp(request.requested_at),
        "decided_at": events.timestamp(request.decided_at),
        "decision_note": request.decision_note,
    }


def public_app_payload(app: DeveloperApp, *, opted_in: bool) -> dict:
    return {"id": app.pk, "name": app.name, "description": app.description, "bot": events.user_payload(app.bot),
            "opted_in": opted_in}


def report_payload(report: SpamReport) -> dict:
    return {"id": report.pk, "app_id": report.app_id, "reason": report.reason, "status": report.status,
            "created_at": events.timestamp(report.created_at)}
