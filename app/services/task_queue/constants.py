"""The one place the task names are written: app/celery/tasks.py registers the tasks under them and
app/celery_app.py's beat schedule refers to them. A task published under a name no worker registered
is silently dropped, so the names must never be spelt twice."""

FAN_OUT_TASK = "messages.fan_out"
RETRY_TASK = "messages.retry_delivery"
REQUEUE_STRANDED_TASK = "housekeeping.requeue_stranded"
PURGE_DELIVERIES_TASK = "housekeeping.purge_deliveries"
