"""Background work for the task worker (`manage.py db_worker`, django-tasks' database backend)."""

from datetime import datetime

from django_tasks import task

from developer_api.services import webhooks


@task()
def deliver_webhook_lane(app_id: int, conversation_id: int) -> int:
    """Post the due webhook events of one (app, conversation), in order."""
    return webhooks.deliver_lane(app_id=app_id, conversation_id=conversation_id)


def enqueue_lane(*, app_id: int, conversation_id: int, run_after: datetime | None = None) -> None:
    """Queue a run of `deliver_webhook_lane`, at `run_after` if the backend can defer tasks (the
    database backend can; one that cannot runs it now, and the lane waits for its next event or
    for `manage.py deliver_webhooks`)."""
    job = deliver_webhook_lane
    if run_after is not None:
        if not job.get_backend().supports_defer:
            return
        job = job.using(run_after=run_after)
    job.enqueue(app_id=app_id, conversation_id=conversation_id)
