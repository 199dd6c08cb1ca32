"""The only wiring: validate, plan, dispatch calls, download, journal, stop cleanly.

Stages (one task group, owned here and nowhere else)::

    producer (job file, streamed in chunks on a worker thread, planned against the journal)
      -> call stream (bounded) -> call workers (pacer slot -> TaskClient.generate)
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
import dataclasses
import functools
from pathlib import Path

import aiohttp
import anyio

from wanbatch._calls import CallRunner
from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._config import BatchConfig
from wanbatch._control import EventCallback, RunControl
from wanbatch._downloads import Downloader, DownloadQueue, Generations
from wanbatch._errors import JournalError, OutputError
from wanbatch._expiry import ExpiredJobs
from wanbatch._finish import finish_run
from wanbatch._folder import check_folder, prepare_out_dir
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal, read_journal
from wanbatch._keys import key_label
from wanbatch._lock import FolderLock, lock_folder
from wanbatch._pacing import Pacer
from wanbatch._planning import RunPlan, accept_plan, plan_run
from wanbatch._policy import Backoff
from wanbatch._pool import KeyPool, PoolKey
from wanbatch._producer import JobProducer
from wanbatch._records import cut_answer_record, end_record, run_record
from wanbatch._restore import ImageRestorer
from wanbatch._shards import shard_conflict, shard_label
from wanbatch._signals import on_stop_signals
from wanbatch._state import RunState
from wanbatch._summary import ExitCode, RunSummary
from wanbatch._taskcalls import TaskClient, settle_left_tasks
from wanbatch._urls import endpoint_of, is_loopback_url
from wanbatch._version import __version__

__all__ = ["BatchRun", "run_batch"]


class BatchRun:
    """One run of a job file into an output folder. Use :func:`run_batch` for the simple case.

    ``clock``: where the run reads time and sleeps (tests pass a simulated one).
    """

    def __init__(
        self,
        jobs_path: str | Path,
        out_dir: str | Path,
        config: BatchConfig | None = None,
        *,
        on_event: EventCallback | None = None,
        dry_run: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.jobs_path = Path(jobs_path)
        self.out_dir = Path(out_dir)
        self.config = config or BatchConfig()
        self.dry_run = dry_run
        self.summary = RunSummary(dry_run=dry_run)
        self._control = control = RunControl(self.config, self.summary, clock=clock)
        if on_event:
            control.listeners.append(on_event)
        self._used = False
        #: Folded into line_hash(): a change of run defaults makes every line "changed".
        self._salt = self.config.defaults.model_dump_json()
        self._restorer = ImageRestorer(self.out_dir, control)

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
        started = self._control.clock.monotonic()
        # A real run holds the folder from its first read to its last write; a dry run only
        # reads, so it needs no lock. A folder that does not exist yet is created (and locked)
        # only once the job file proved valid: bad input leaves nothing behind.
        lock: FolderLock | None = None
        if not self.dry_run and self.out_dir.is_dir():
            lock = await anyio.to_thread.run_sync(lock_folder, self.out_dir)
        try:
            # The journal first (from its snapshot when it has one), so that validation can
            # pass over done lines and plan the rest in the same single pass over the job file.
            state = await anyio.to_thread.run_sync(read_journal, self.out_dir)
            check_folder(self.out_dir, state, self.config.base_url)
            shard_problem = shard_conflict(
                str(self.out_dir), runs=state.runs, recorded=state.shard, wanted=self.config.shard
            )
            if shard_problem:
                raise JournalError(shard_problem)
            self._control.clock_offset = state.clock_offset
            plan = await anyio.to_thread.run_sync(
                functools.partial(
                    plan_run, self.jobs_path, self.out_dir, self.config, state, salt=self._salt
                )
            )
            accept_plan(
                plan,
                state,
                self.summary,
                jobs_path=self.jobs_path,
                out_dir=self.out_dir,
                config=self.config,
                emit=self._control.emit,
            )
            if self.dry_run:
                return self.summary
            if not self.config.keys:
                raise ValueError("BatchConfig.api_key is required for a real run")
            if len(self.config.keys) > 1 and self.config.mode == "async":
                # A task can be polled only with its account's key, and the journal does not
                # say which key submitted it.
                raise ValueError("task mode (mode='async') takes one API key, not a key pool")
            if lock is None:
                lock = await anyio.to_thread.run_sync(lock_folder, self.out_dir)
                if (self.out_dir / "journal.jsonl").exists():
                    raise JournalError(
                        f"{self.out_dir} was started by another run while this one read its "
                        "job file; run again to resume it"
                    )
            prepare_out_dir(self.out_dir)
            pool_size = len(self.config.keys) if len(self.config.keys) > 1 else 0
            self._control.emit(dataclasses.replace(plan.planned_event(), keys=pool_size))
            journal = Journal(self.out_dir)
            journal.open()
            try:
                self._start_journal(journal, plan)
                await self._dispatch(state, journal, plan)
            finally:
                del state  # the end reads the journal again: one state in memory at a time
                with anyio.CancelScope(shield=True):
                    self._append_end(journal)
                    journal.close()  # first, with no await before it
                    await anyio.to_thread.run_sync(self._finish, plan, started)
            return self.summary
        finally:
            if lock is not None:
                lock.release()

    def _start_journal(self, journal: Journal, plan: RunPlan) -> None:
        """The run's first records: the ``run`` record, and a paid answer cut off last time."""
        journal.append(
            run_record(
                jobs_file=str(self.jobs_path.absolute()),
                version=__version__,
                jobs=plan.counts["jobs"],
                endpoint=endpoint_of(self.config.base_url),
                mock=is_loopback_url(self.config.base_url),
                shard=shard_label(self.config.shard),
            )
        )
        if journal.cut_answer is not None:  # written down now, as the fold counted it
            journal.append(cut_answer_record(job_id=journal.cut_answer))

    def _append_end(self, journal: Journal) -> None:
        """The ``end`` record: the run was not killed (``status`` tells a finished folder)."""
        with contextlib.suppress(OutputError):  # a broken journal: the run says why already
            journal.append(end_record(stopped=self._control.stop_reason))

    async def _dispatch(self, state: RunState, journal: Journal, plan: RunPlan) -> None:
        """The stages of the run, in one task group, until every one of them has ended."""
        config, control = self.config, self._control
        secrets = config.keys
        backoff = Backoff(initial=config.backoff_initial, maximum=config.backoff_max)
        connector = aiohttp.TCPConnector(
            limit=config.concurrency * len(secrets) + config.download_concurrency + 4,
            ttl_dns_cache=300,
        )
        downloads, generations = DownloadQueue(), Generations()
        send, receive = anyio.create_memory_object_stream[PlannedJob](
            max_buffer_size=max(2, config.concurrency * len(secrets))
        )
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            pool = KeyPool(
                [
                    PoolKey(
                        key_label(position, secret),
                        Pacer(
                            config.concurrency,
                            config.rps,
                            cooldown=config.throttle_cooldown,
                            clock=control.clock,
                        ),
                        TaskClient(
                            session,
                            config.base_url,
                            secret,
                            timeout=config.call_timeout,
                            clock=control.clock,
                            control=control,
                            journal=journal,
                            tasks=config.mode == "async",
                            poll_interval=config.poll_interval,
                            # Tasks of earlier runs are polled with the first key.
                            open_tasks=state.tasks if position == 1 else {},
                        ),
                    )
                    for position, secret in enumerate(secrets, start=1)
                ]
            )
            client = pool.keys[0].client
            control.tasks_waiting = pool.tasks_waiting
            calls = CallRunner(
                control,
                pool=pool,
                backoff=backoff,
                journal=journal,
                downloads=downloads,
                generations=generations,
                salt=self._salt,
                images_bought=state.images_generated,
            )
            with anyio.CancelScope() as abort_scope:
                control.abort_scope = abort_scope
                async with anyio.create_task_group() as tg:
                    expired = ExpiredJobs(control, calls, downloads, generations, journal, tg)
                    downloader = Downloader(
                        self.out_dir,
                        control,
                        downloads,
                        generations,
                        on_expiry=expired.after_expiry,
                    )
                    producer = JobProducer(
                        self.jobs_path,
                        control,
                        calls,
                        downloads,
                        generations,
                        journal,
                        salt=self._salt,
                        work_starts_at=plan.report.work_starts_at,
                        fail_expired=expired.fail,
                    )
                    downloads.add_producer()  # the producer
                    tg.start_soon(producer.run, state, send)
                    for key in pool.keys:  # each key's workers wait for its slots
                        for _ in range(config.concurrency):
                            downloads.add_producer()
                            tg.start_soon(calls.worker, receive.clone(), key)
                    receive.close()
                    for _ in range(config.download_concurrency):
                        tg.start_soon(downloader.worker, session, journal, backoff)
                    tg.start_soon(self._restorer.check, state, session, journal, backoff)
            control.abort_scope = None
            await settle_left_tasks(client, control)
        self.summary.concurrency_limit = pool.limit()
        if pool.several:
            self.summary.keys_active = pool.active
            self.summary.keys_retired = len(pool.keys) - pool.active
            self.summary.keys = pool.report()

    # ----------------------------------------------------------------- finish
    def _finish(self, plan: RunPlan, started: float) -> None:
        finish_run(
            self.out_dir,
            self.jobs_path,
            self._control,
            salt=self._salt,
            start_prefix=plan.start_prefix,
            start_keys=plan.start_keys,
            # Missing images at the start: rebuild, so the view lists exactly those on disk.
            rebuild_views=self._restorer.missing_at_start > 0,
            started=started,
        )


async def run_batch(
    jobs: str | Path,
    out: str | Path,
    config: BatchConfig | None = None,
    *,
    on_event: EventCallback | None = None,
    dry_run: bool = False,
    handle_signals: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> RunSummary:
    """Run a job file into an output folder; resume what an earlier run left.

    Args:
        jobs: the JSONL job file.
        out: the output folder (created if needed; resumed if it holds a journal).
        config: run settings (API key, base URL, concurrency, defaults, ...).
        on_event: called with every :mod:`wanbatch` event (progress, logging).
        dry_run: validate and plan only; nothing is sent.
        handle_signals: a first SIGINT/SIGTERM/SIGHUP stops new calls, a second aborts (CLIs).
        clock: where the run reads time and sleeps (the system's; tests pass a simulated one).

    Returns:
        The :class:`RunSummary` (also written to ``out/summary.json``).
    """
    run = BatchRun(jobs, out, config, on_event=on_event, dry_run=dry_run, clock=clock)
    if not handle_signals:
        return await run.run()

    def on_signal() -> None:  # a first signal stops, a second aborts
        if run.stopping:
            run.abort()
        else:
            run.request_stop("interrupted")

    return await on_stop_signals(run.run, on_signal)
