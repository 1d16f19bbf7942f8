"""Whole-job pipeline: a validated job config, the local run of every stage, the report.

``config`` (``JobConfig``, ``load_job_config``, ``JobConfigError``) is torch-free; ``run``
(``run_job``) and ``cli`` (``grait run``) load the model stack.
"""
