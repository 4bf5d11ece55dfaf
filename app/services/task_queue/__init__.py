"""The Celery task queue, as the services see it: publish a fan-out or a retry."""
