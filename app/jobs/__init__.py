"""Jobs: creation and state (service), leases, recording, queues and the local runner.

FastAPI-free: the worker imports ``lease`` and ``recorder`` to run jobs.
"""
