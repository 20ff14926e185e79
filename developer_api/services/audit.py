"""The audit log: every operator action (and every suspension the system makes on its own)."""

from django.db import models

from developer_api.models import AuditLog
from storage.models import User


def record(*, actor: User | None, action: str, target: models.Model, detail: dict | None = None) -> AuditLog:
    """Write one audit entry; `actor` is None for what the system did by itself."""
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=target._meta.label,
        target_id=str(target.pk),
        target_repr=str(target)[:200],
        detail=detail or {},
    )
