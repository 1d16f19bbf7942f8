"""Execution: runs queued jobs. Claims them, supervises the child, records progress, gives
them back.

- ``queue``: how the API hands a committed job to a runner (local wake-up or Celery message).
- ``lease``: the run store, the one writer of a job's status and lease columns (claim,
  heartbeat, finish, release, reap, cancel request).
- ``supervise``: one claimed job's child process (start, lease renewal, kill, give back).
- ``local_runner``: the embedded runner thread of the service (``GRAIT_QUEUE=local``).
- ``recorder``: what a running job writes (stages, progress, metrics, notices, outcome).
- ``transient``: transient database errors, told apart from real ones and retried.

Who may import it: the wiring (``app.main``), the worker package, the API only for the
``queue`` interface, and the jobs domain only for the run store (``lease.request_cancel``).
This package imports the jobs domain's states and events and the database layer, never
``app.api``, FastAPI or torch: the Celery worker's parent process imports it.
"""
