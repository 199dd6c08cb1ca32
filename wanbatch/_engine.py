"""The only wiring: validate, plan, dispatch calls, download, journal, stop cleanly.

Stages (one task group, owned here and nowhere else)::

    producer (job file, streamed in chunks on a worker thread, planned against the journal)
      -> call stream (bounded) -> call workers (pacer slot -> ApiClient.generate)
      -> journal "generated" -> download queue (earliest Expires= first)
      -> download workers (download_image) -> journal "saved"

A slow download never holds a generation slot. Stopping (fatal answer, first Ctrl-C, image
cap) cancels only *waiting* (for a slot, a backoff, the next job); calls in flight finish and
their images download. Aborting (second Ctrl-C, or a journal that cannot be written) cancels
everything, and counts the calls it abandons as possibly billed; the journal is consistent
either way because each record is one whole line written synchronously.
"""

from __future__ import annotations

import contextlib
import signal
import time
from array import array
from pathlib import Path

import aiohttp
import anyio

from wanbatch import _events as ev
from wanbatch._calls import CallRunner
from wanbatch._client import ApiClient
from wanbatch._config import BatchConfig
from wanbatch._control import EventCallback, RunControl
from wanbatch._donejobs import DoneLines
from wanbatch._doneprefix import DonePrefix
from wanbatch._downloads import Downloader, DownloadQueue, Generations
from wanbatch._errors import InvalidJobs, JournalError, OutputError, UnusableOutput, UrlExpired
from wanbatch._finish import finish_run
from wanbatch._folder import orphan_images, prepare_out_dir, service_conflict
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal, read_journal
from wanbatch._lock import FolderLock
from wanbatch._models import price_for, run_region
from wanbatch._pacing import Pacer
from wanbatch._plan import MAX_REGENERATIONS, Action, plan_job
from wanbatch._policy import Backoff
from wanbatch._prefixcache import read_prefix
from wanbatch._prefixscan import usable_prefix
from wanbatch._producer import JobProducer
from wanbatch._records import cut_answer_record, end_record, run_record
from wanbatch._restore import ImageRestorer
from wanbatch._state import RunState
from wanbatch._summary import ExitCode, RunSummary
from wanbatch._urls import endpoint_of, is_loopback_url
from wanbatch._validate import ValidationReport, first_problems, validate_file
from wanbatch._version import __version__

__all__ = ["BatchRun", "run_batch"]

#: What the plan counts (``RunSummary.plan``, the dry-run report).
PLAN_KEYS = (
    "jobs",
    "call",
    "download",
    "done",
    "failed",
    "changed",
    "matched",
    "images_max",
    "regenerate",
)
#: Problems of the job file shown at the start of a run (validate lists them all).
NOTES_SHOWN = 10


class BatchRun:
    """One run of a job file into an output folder. Use :func:`run_batch` for the simple case."""

    def __init__(
        self,
        jobs_path: str | Path,
        out_dir: str | Path,
        config: BatchConfig | None = None,
        *,
        on_event: EventCallback | None = None,
        dry_run: bool = False,
    ) -> None:
        self.jobs_path = Path(jobs_path)
        self.out_dir = Path(out_dir)
        self.config = config or BatchConfig()
        self.dry_run = dry_run
        self.summary = RunSummary(dry_run=dry_run)
        self._control = control = RunControl(self.config, self.summary)
        if on_event:
            control.listeners.append(on_event)
        self._used = False
        #: Folded into line_hash(): a change of run defaults makes every line "changed".
        self._salt = self.config.defaults.model_dump_json()
        self._start_prefix: DonePrefix | None = None
        self._start_keys: array[int] | None = None
        self._generations = Generations()
        self._started = 0.0
        self._restorer = ImageRestorer(self.out_dir, control)
        self._lock: FolderLock | None = None
        self._plan_cost = 0.0  #: what the calls planned may cost at most, CNY (dry-run plan)

    # ----------------------------------------------------------------- control
    def subscribe(self, callback: EventCallback) -> None:
        """Call ``callback`` with every event the run emits."""
        self._control.listeners.append(callback)

    def request_stop(self, reason: str = "interrupted", exit_code: ExitCode | None = None) -> None:
        """Start no new call; let calls in flight finish and their images download."""
        self._control.request_stop(reason, exit_code)

    def abort(self) -> None:
        """Cancel everything now (second Ctrl-C). The folder stays consistent and resumable.

        Calls in flight are abandoned: the service may still bill them, so each counts (and is
        journaled) as possibly billed.
        """
        self._control.abort("aborted", ExitCode.INTERRUPTED)

    @property
    def stopping(self) -> bool:
        """True once no new call may start."""
        return self._control.stopping

    # ----------------------------------------------------------------- phases
    def _validate(self, state: RunState, counts: dict[str, int]) -> ValidationReport:
        """Validate every line and plan in the same pass (counts by action)."""
        self._control.clock_offset = state.clock_offset

        def on_job(job_id: str, max_new_images: int, model: str) -> None:
            job_state = state.job(job_id)
            counts["jobs"] += 1
            counts["matched"] += job_state is not None
            # The request fingerprint needs the body, built later; "changed" is counted then.
            plan = plan_job(
                job_state,
                "",
                retry_failed=self.config.retry_failed,
                regenerate_expired=self.config.regenerate_expired,
            )
            counts["regenerate"] += plan.regenerate
            if plan.action is Action.CALL:
                counts["call"] += 1
                counts["images_max"] += max_new_images
                self._plan_cost += max_new_images * price_for(self.config, model)
            elif plan.action is Action.DOWNLOAD:
                counts["download"] += 1
            elif plan.action is Action.SKIP_DONE:
                counts["done"] += 1
            else:
                counts["failed"] += 1

        # The done prefix the last run's end found: when the job file still starts with the
        # same bytes, those lines are not read again (a resume over 1M done jobs: ~0.1 s, not 4).
        prefix = usable_prefix(read_prefix(self.out_dir), self.jobs_path, state, self._salt)
        if prefix is not None:  # the end of the run scans on from it (a copy: 8 bytes a job)
            self._start_prefix = prefix
            self._start_keys = array("Q", state.done.arrays()[0])
        report = validate_file(
            self.jobs_path,
            self.config.defaults,
            done=DoneLines(state, self._salt),
            prefix=prefix,
            on_job=on_job,
            region=run_region(self.config),
        )
        counts["jobs"] += report.skipped_done
        counts["matched"] += report.skipped_done
        counts["done"] += report.skipped_done
        self.summary.skipped_invalid = report.invalid_lines
        self.summary.validation_warnings = report.warning_count
        return report

    async def run(self) -> RunSummary:
        """Run the batch to the end (or to a stop) and return its summary.

        Raises:
            InvalidJobs: the job file has errors (and ``skip_invalid`` is off), or no valid job;
                nothing was sent.
            JournalError: the output folder holds a run of another job file, images its
                journal does not account for, or images from the other kind of service (the
                mock or the real one); :class:`FolderInUse` when another run holds it.
            OutputError: the output folder cannot be used.
        """
        if self._used:
            raise RuntimeError("a BatchRun runs once; create a new one to run again")
        self._used = True
        self._started = time.monotonic()
        # A real run holds the folder from its first read to its last write; a dry run only
        # reads, so it needs no lock. A folder that does not exist yet is created (and locked)
        # only once the job file proved valid: bad input leaves nothing behind.
        if not self.dry_run and self.out_dir.is_dir():
            self._lock = await anyio.to_thread.run_sync(self._lock_folder)
        try:
            return await self._run()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _lock_folder(self) -> FolderLock:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnusableOutput(
                f"cannot prepare the output folder {self.out_dir}: {exc.strerror or exc}"
            ) from exc
        lock = FolderLock(self.out_dir)
        lock.acquire()
        return lock

    def _check_folder(self, state: RunState) -> None:
        """Refuse a folder whose images the journal cannot account for, or made by the other
        kind of service (mock or real)."""
        problem = orphan_images(self.out_dir, state) or service_conflict(
            state, self.config.base_url
        )
        if problem is not None:
            raise JournalError(f"{self.out_dir}: {problem}")

    async def _run(self) -> RunSummary:
        # The journal first (from its snapshot when it has one), so that validation can pass
        # over done lines and plan the rest in the same single pass over the job file.
        state = await anyio.to_thread.run_sync(read_journal, self.out_dir)
        self._check_folder(state)
        counts = dict.fromkeys(PLAN_KEYS, 0)
        report = await anyio.to_thread.run_sync(self._validate, state, counts)
        # Nothing valid to run (no job at all, or every line invalid) is an error even with
        # skip_invalid: a run that can buy nothing is a mistake.
        refused = report.valid_jobs == 0 or (
            report.error_count > 0 and not self.config.skip_invalid
        )
        if report.warning_count or (report.error_count and not refused):
            # The warnings, and what skip_invalid skips (InvalidJobs carries the errors).
            self._control.emit(
                ev.ValidationNotes(
                    str(self.jobs_path),
                    report.warning_count,
                    0 if refused else report.invalid_lines,
                    0 if refused else report.error_count,
                    tuple(first_problems(report, NOTES_SHOWN, errors=not refused)),
                )
            )
        if refused:
            raise InvalidJobs(str(self.jobs_path), list(report.errors), report.error_count)
        self.summary.jobs_total = report.valid_jobs
        self._work_starts_at = report.work_starts_at
        self.summary.plan = counts
        if len(state) and counts["jobs"] and counts["matched"] == 0:
            raise JournalError(
                f"{self.out_dir} holds a run of another job file ({state.jobs_file}): none of its "
                f"{len(state)} job ids is in {self.jobs_path}; use a new --out folder"
            )
        self.summary.estimated_cost = round(self._plan_cost, 4)
        if self.dry_run:
            self.summary.jobs_done = counts["done"]
            self.summary.jobs_failed = counts["failed"]
            self.summary.jobs_pending = counts["call"] + counts["download"]
            self.summary.exit_code = ExitCode.OK
            return self.summary
        if self.config.api_key is None:
            raise ValueError("BatchConfig.api_key is required for a real run")
        if self._lock is None:
            self._lock = await anyio.to_thread.run_sync(self._lock_folder)
            if (self.out_dir / "journal.jsonl").exists():
                raise JournalError(
                    f"{self.out_dir} was started by another run while this one read its job "
                    f"file; run again to resume it"
                )
        prepare_out_dir(self.out_dir)
        self._control.emit(
            ev.RunPlanned(
                total=counts["jobs"],
                already_done=counts["done"],
                already_failed=counts["failed"],
                to_call=counts["call"],
                to_download=counts["download"],
                images_max=counts["images_max"],
                price=self._plan_cost / max(1, counts["images_max"]),
            )
        )
        journal = Journal(self.out_dir)
        journal.open()
        try:
            journal.append(
                run_record(
                    jobs_file=str(self.jobs_path.absolute()),
                    version=__version__,
                    jobs=counts["jobs"],
                    endpoint=endpoint_of(self.config.base_url),
                    mock=is_loopback_url(self.config.base_url),
                )
            )
            if journal.cut_answer is not None:  # written down now, as the fold counted it
                journal.append(cut_answer_record(job_id=journal.cut_answer))
            await self._dispatch(state, journal)
        finally:
            del state  # the end reads the journal again: one state in memory at a time
            with anyio.CancelScope(shield=True):
                self._append_end(journal)
                journal.close()  # first, with no await before it
                await anyio.to_thread.run_sync(self._finish)
        return self.summary

    def _append_end(self, journal: Journal) -> None:
        """The ``end`` record: the run was not killed (``status`` tells a finished folder)."""
        with contextlib.suppress(OutputError):  # a broken journal: the run says why already
            journal.append(end_record(stopped=self._control.stop_reason))

    async def _dispatch(self, state: RunState, journal: Journal) -> None:
        config = self.config
        pacer = Pacer(config.concurrency, config.rps, cooldown=config.throttle_cooldown)
        backoff = Backoff(initial=config.backoff_initial, maximum=config.backoff_max)
        connector = aiohttp.TCPConnector(
            limit=config.concurrency + config.download_concurrency + 4, ttl_dns_cache=300
        )
        downloads = DownloadQueue()
        downloader = Downloader(
            self.out_dir, self._control, downloads, self._generations, on_expiry=self._after_expiry
        )
        send, receive = anyio.create_memory_object_stream[PlannedJob](
            max_buffer_size=max(2, config.concurrency)
        )
        assert config.api_key is not None
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            client = ApiClient(
                session, config.base_url, config.api_key, timeout=config.call_timeout
            )
            self._calls = calls = CallRunner(
                self._control,
                client=client,
                pacer=pacer,
                backoff=backoff,
                journal=journal,
                downloads=downloads,
                generations=self._generations,
                salt=self._salt,
                images_bought=state.images_generated,
            )
            self._journal_file, self._downloads = journal, downloads
            with anyio.CancelScope() as abort_scope:
                self._control.abort_scope = abort_scope
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    downloads.add_producer()  # the producer
                    producer = JobProducer(
                        self.jobs_path,
                        self._control,
                        calls,
                        downloads,
                        self._generations,
                        journal,
                        salt=self._salt,
                        work_starts_at=self._work_starts_at,
                        fail_expired=self._fail_expired,
                    )
                    tg.start_soon(producer.run, state, send)
                    for _ in range(config.concurrency):
                        downloads.add_producer()
                        tg.start_soon(calls.worker, receive.clone())
                    receive.close()
                    for _ in range(config.download_concurrency):
                        tg.start_soon(downloader.worker, session, journal, backoff)
                    tg.start_soon(self._restorer.check, state, session, journal, backoff)
            self._control.abort_scope = None
        self.summary.concurrency_limit = pacer.statistics().limit

    # ----------------------------------------------------------------- expired URLs
    def _after_expiry(self, job: PlannedJob, expiries: int, cause: str) -> None:
        """The job's URLs expired: generate it again, within its bound, or fail it."""
        journal = self._journal_file
        if not self.config.regenerate_expired or expiries > MAX_REGENERATIONS:
            self._fail_expired(journal, job, expiries, cause)
        elif not self.stopping:
            self._calls.regenerating.add(job.id)  # counted once its new generation is answered
            self._downloads.add_producer()  # before this worker can see an empty queue
            self._tg.start_soon(self._regenerate, job)

    def _fail_expired(self, journal: Journal, job: PlannedJob, expiries: int, cause: str) -> None:
        """Fail a job whose URLs expired and that may not be bought again (``failed.jsonl``)."""
        if self.config.regenerate_expired:
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
        self._calls.fail(journal, job, expiries, UrlExpired(f"{why}; likely cause: {cause}"))

    async def _regenerate(self, job: PlannedJob) -> None:
        try:
            await self._calls.call_job(job)
        except OutputError:
            pass  # the journal failed; the run is stopping (see RunControl.journal)
        finally:
            self._downloads.producer_done()

    # ----------------------------------------------------------------- finish
    def _finish(self) -> None:
        finish_run(
            self.out_dir,
            self.jobs_path,
            self._control,
            salt=self._salt,
            start_prefix=self._start_prefix,
            start_keys=self._start_keys,
            # Missing images at the start: rebuild, so the view lists exactly those on disk.
            rebuild_views=self._restorer.missing_at_start > 0,
            started=self._started,
        )


#: Signals that stop a run: Ctrl-C, kill, and a closed terminal or dropped ssh session (SIGHUP,
#: which would otherwise end the process without a drain).
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


async def run_batch(
    jobs: str | Path,
    out: str | Path,
    config: BatchConfig | None = None,
    *,
    on_event: EventCallback | None = None,
    dry_run: bool = False,
    handle_signals: bool = False,
) -> RunSummary:
    """Run a job file into an output folder; resume what an earlier run left.

    Args:
        jobs: the JSONL job file.
        out: the output folder (created if needed; resumed if it holds a journal).
        config: run settings (API key, base URL, concurrency, defaults, ...).
        on_event: called with every :mod:`wanbatch` event (progress, logging).
        dry_run: validate and plan only; nothing is sent.
        handle_signals: a first SIGINT/SIGTERM/SIGHUP stops new calls, a second aborts (CLIs).

    Returns:
        The :class:`RunSummary` (also written to ``out/summary.json``).
    """
    run = BatchRun(jobs, out, config, on_event=on_event, dry_run=dry_run)
    if not handle_signals:
        return await run.run()
    result: RunSummary | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
                async for _ in signals:
                    if run.stopping:
                        run.abort()
                    else:
                        run.request_stop("interrupted")

        tg.start_soon(watch)
        try:
            result = await run.run()
        except Exception as exc:  # re-raised below, outside the group: no ExceptionGroup
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    assert result is not None
    return result
