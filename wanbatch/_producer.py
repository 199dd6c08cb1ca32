"""The producer: the job file streamed in chunks on a worker thread, each job planned against
the journal and its work handed out (a call to the call workers, images to the download queue,
a failure or a meta record to the journal).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from wanbatch._calls import CallRunner
from wanbatch._control import RunControl
from wanbatch._donejobs import DoneLines, line_hash
from wanbatch._downloads import (
    MAX_QUEUED_DOWNLOADS,
    DownloadItem,
    DownloadQueue,
    Generations,
    saved_info,
)
from wanbatch._errors import OutputError
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal
from wanbatch._loader import iter_jobs
from wanbatch._plan import Action, expiry_cause, plan_job
from wanbatch._records import meta_record
from wanbatch._state import JobState, RunState

__all__ = ["CHUNK_JOBS", "JobProducer"]

#: Jobs read from the file per hop to the worker thread.
CHUNK_JOBS = 256

#: Fails a job whose URLs expired and may not be bought again: (job, expiries, cause).
FailExpired = Callable[[PlannedJob, int, str], None]


class JobProducer:
    """Reads the job file once more after validation and hands out the work of each job."""

    def __init__(
        self,
        jobs_path: Path,
        control: RunControl,
        calls: CallRunner,
        downloads: DownloadQueue,
        generations: Generations,
        journal: Journal,
        *,
        salt: str,
        work_starts_at: tuple[int, int] | None,
        fail_expired: FailExpired,
    ) -> None:
        self._jobs_path = jobs_path
        self._control = control
        self._config = control.config
        self._summary = control.summary
        self._calls = calls
        self._downloads = downloads
        self._generations = generations
        self._journal = journal
        self._salt = salt
        #: Where validation found the first line with work (None: every line is done).
        self._work_starts_at = work_starts_at
        self._fail_expired = fail_expired

    async def run(self, state: RunState, send: MemoryObjectSendStream[PlannedJob]) -> None:
        """Plan every job of the file against the journal and hand out its work."""
        downloads = self._downloads
        # Start where validation found the first line with work (a resume's done prefix is not
        # read twice), unless invalid lines were skipped: then duplicate ids must be seen whole.
        start = self._work_starts_at if self._summary.skipped_invalid == 0 else (1, 0)
        items = iter_jobs(
            self._jobs_path,
            self._config.defaults,
            skip_invalid=True,
            done=DoneLines(state, self._salt),
            start=start or (1, 0),
            # Validation found no duplicate: no second id set (17 bytes a job) is needed.
            check_duplicates=self._summary.skipped_invalid > 0,
            spec=self._config.job_input,
        )
        if start is None:  # every line is done and unchanged
            items.close()
        shard = self._config.shard

        def next_chunk() -> list[PlannedJob]:
            chunk: list[PlannedJob] = []
            for item in items:
                if isinstance(item, PlannedJob) and (shard is None or shard.holds(item.id)):
                    chunk.append(item)
                    if len(chunk) >= CHUNK_JOBS:
                        break
            return chunk

        try:
            async with send:
                while not self._control.stopping:
                    chunk = await anyio.to_thread.run_sync(next_chunk)
                    if not chunk:
                        break
                    for job in chunk:
                        plan = plan_job(
                            state.job(job.id),
                            job.fingerprint,
                            retry_failed=self._config.retry_failed,
                            regenerate_expired=self._config.regenerate_expired,
                        )
                        self._summary.changed_jobs += plan.changed
                        if plan.expiries:
                            self._generations.expiries[job.id] = plan.expiries
                        if plan.action is Action.FAIL:
                            cause = expiry_cause(
                                lifetime=None, waited=None, clock_offset=self._control.clock_offset
                            )
                            self._fail_expired(job, plan.expiries, cause)
                        elif plan.action is Action.CALL:
                            if plan.regenerate:
                                self._calls.regenerating.add(job.id)
                            if job.id in state.lost:
                                self._calls.lost_before[job.id] = state.lost[job.id]
                            try:
                                send.send_nowait(job)  # the usual case: room in the buffer
                            except anyio.WouldBlock:
                                with self._control.interruptible():
                                    await send.send(job)
                        elif plan.action is Action.SKIP_DONE and not plan.changed:
                            self._record_meta(state.job(job.id), job)
                        elif plan.action is Action.DOWNLOAD:
                            gen = self._generations.new(job.id, len(plan.downloads))
                            info = saved_info(job, None, None)
                            for k, url, exp in plan.downloads:
                                downloads.put(
                                    DownloadItem(
                                        exp if exp is not None else math.inf,
                                        0,
                                        job,
                                        k,
                                        url,
                                        gen,
                                        info,
                                    )
                                )
                            with self._control.interruptible():
                                await downloads.wait_below(MAX_QUEUED_DOWNLOADS)
                        if self._control.stopping:
                            break
        except OutputError:
            pass  # the journal failed; the run is stopping (see RunControl.journal)
        finally:
            downloads.producer_done()
            close = getattr(items, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close)

    def _record_meta(self, job_state: JobState | None, job: PlannedJob) -> None:
        """A done job whose line changed but not its request (its meta was edited, or only its
        spelling): journal the line's meta and hash, so that metadata.jsonl shows the meta and
        the next resume passes the line over unread. Nothing is bought."""
        if job_state is None:
            return
        record = meta_record(
            job_id=job.id,
            fp=job.fingerprint,
            gen_line=job_state.gen_line,
            images=job_state.saved.bit_count(),
            line=line_hash(job.source, self._salt),
            meta=job.meta,
        )
        self._control.journal(self._journal, record)
