"""Jobs whose result URLs expired before their images were saved: generated again, within
their bound, or failed.

The download workers report an expiry (the store refused a URL as expired); the producer
reports a job planned to fail for it on resume. A job is generated at most
``MAX_REGENERATIONS + 1`` times, counted over runs; with ``--no-regenerate-expired`` never again.
"""

from __future__ import annotations

from anyio.abc import TaskGroup

from wanbatch._calls import CallRunner
from wanbatch._control import RunControl
from wanbatch._downloads import DownloadQueue, Generations
from wanbatch._errors import OutputError, UrlExpired
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal
from wanbatch._plan import MAX_REGENERATIONS

__all__ = ["ExpiredJobs"]


class ExpiredJobs:
    """What a run does with a job whose URLs expired; regenerations run in ``task_group``."""

    def __init__(
        self,
        control: RunControl,
        calls: CallRunner,
        downloads: DownloadQueue,
        generations: Generations,
        journal: Journal,
        task_group: TaskGroup,
    ) -> None:
        self._control = control
        self._config = control.config
        self._calls = calls
        self._downloads = downloads
        self._generations = generations
        self._journal = journal
        self._tg = task_group

    def after_expiry(self, job: PlannedJob, expiries: int, cause: str) -> None:
        """The job's URLs expired: generate it again, within its bound, or fail it."""
        if not self._config.regenerate_expired or expiries > MAX_REGENERATIONS:
            self.fail(job, expiries, cause)
        elif not self._control.stopping:
            self._calls.regenerating.add(job.id)  # counted once its new generation is answered
            self._downloads.add_producer()  # before this worker can see an empty queue
            self._tg.start_soon(self._regenerate, job)

    def fail(self, job: PlannedJob, expiries: int, cause: str) -> None:
        """Fail a job whose URLs expired and that may not be bought again (``failed.jsonl``)."""
        if self._config.regenerate_expired:
            why = (
                f"its result URLs expired {expiries} times before its images were downloaded "
                f"(a job is generated at most {MAX_REGENERATIONS + 1} times)"
            )
        else:
            why = (
                "its result URLs expired before its images were downloaded, and generating "
                "it again is off (--no-regenerate-expired)"
            )
        self._generations.forget(job.id)
        self._calls.fail(self._journal, job, expiries, UrlExpired(f"{why}; likely cause: {cause}"))

    async def _regenerate(self, job: PlannedJob) -> None:
        try:
            await self._calls.call_job(job)
        except OutputError:
            pass  # the journal failed; the run is stopping (see RunControl.journal)
        finally:
            self._downloads.producer_done()
