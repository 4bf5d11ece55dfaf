"""The worker: the Celery app, its tasks, the queue the API publishes them to, and each process's runtime.

`app/worker/main.py` is the composition root Celery's CLI loads (`celery -A app.worker.main worker|beat`).
"""
