"""The CLI's mirror of the job statuses equals the service's (names, values, terminal set)."""

from __future__ import annotations

from app.jobs import states as service
from grait_cli import states as cli


def test_cli_job_status_mirror_equals_the_service_enum():
    assert [(s.name, s.value) for s in cli.JobStatus] == [
        (s.name, s.value) for s in service.JobStatus
    ]
    assert {str(s) for s in cli.TERMINAL_STATUSES} == {str(s) for s in service.TERMINAL_STATUSES}
