"""Jobs: the jobs domain. Spec and validation, creation and reads (service, repository),
states and events, limits, outputs, public views, tools, evaluations and vocabulary.

FastAPI-free. Running a job (leases, supervision, recording, queues, the local runner) is
``app.execution``.
"""
