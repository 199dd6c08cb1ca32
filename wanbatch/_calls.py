"""The call attempt loop: one job called until it is answered, fails, or the run stops.

Each attempt takes a ``--max-images`` reservation and a pacer slot, calls the service, and
journals the outcome: an answer (its images queued for download), a failed attempt (retried
after a backoff when worth it), a failed job, or a stop of the batch (a fatal answer, a streak
of failures no retry can help: see :class:`CallStreaks`). A call cancelled in flight by an
abort is journaled as possibly billed.
"""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from wanbatch import _events as ev
from wanbatch._cap import ImageCap
from wanbatch._control import RunControl
from wanbatch._downloads import (
    DOWNLOAD_BACKLOG_PER_WORKER,
    DownloadQueue,
    Generations,
)
from wanbatch._errors import (
    ApiError,
    BatchFatal,
    ConnectFailed,
    JobRejected,
    OutputError,
    ResponseLost,
    Throttled,
    TransportError,
)
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal
from wanbatch._keys import account_fatal
from wanbatch._outcomes import CallOutcomes
from wanbatch._policy import Backoff
from wanbatch._pool import KeyPool, PoolKey
from wanbatch._summary import ExitCode
from wanbatch._taskcalls import TaskClient, TaskLeft

__all__ = ["CallRunner"]


class CallRunner:
    """Calls jobs for the run: the call workers, and the calls that regenerate expired jobs."""

    def __init__(
        self,
        control: RunControl,
        *,
        pool: KeyPool,
        backoff: Backoff,
        journal: Journal,
        downloads: DownloadQueue,
        generations: Generations,
        salt: str,
        images_bought: int,
    ) -> None:
        self._control = control
        self._config = control.config
        self._summary = control.summary
        self._pool = pool
        self._backoff = backoff
        self._journal = journal
        self._downloads = downloads
        self._cap = ImageCap(self._config.max_images, bought=images_bought)
        self._outcomes = outcomes = CallOutcomes(
            control, pool=pool, cap=self._cap, generations=generations, salt=salt
        )
        #: Fail a job for good (``failed.jsonl``), and the jobs being generated again after
        #: an expiry: the run's other parts use them too.
        self.fail = outcomes.fail
        self.regenerating = outcomes.regenerating
        self._download_backlog = max(
            32, DOWNLOAD_BACKLOG_PER_WORKER * self._config.download_concurrency
        )
        #: Calls of a pending job that lost their answer in earlier runs (from the journal).
        self.lost_before: dict[str, int] = {}

    async def worker(
        self, receive: MemoryObjectReceiveStream[PlannedJob], home: PoolKey | None = None
    ) -> None:
        """Call the jobs the producer sends until its stream ends, on ``home``'s slots (see
        :class:`~wanbatch._pool.KeyPool`; None: the first key)."""
        pool = self._pool
        home = home or pool.keys[0]
        downloads = self._downloads
        try:
            async with receive:
                while True:
                    lease: list[tuple[PoolKey, object]] = []
                    if pool.several and not self._control.stopping:
                        # A key with room first, then a job: so jobs go to the keys with room
                        # (a job taken first would wait for its worker's key, however busy).
                        got = pool.try_acquire(home)
                        if got is None:
                            with self._control.interruptible():
                                got = await pool.acquire(home)
                        if got is not None:
                            lease.append(got)
                            home = got[0]
                    try:
                        try:
                            job = receive.receive_nowait()  # no scheduling round trip if queued
                        except anyio.WouldBlock:
                            job = await receive.receive()
                    except BaseException as exc:
                        for key, token in lease:
                            key.pacer.release(token)
                        if isinstance(exc, anyio.EndOfStream):
                            break
                        raise
                    if self._control.stopping:
                        for key, token in lease:
                            key.pacer.release(token)
                        continue  # drain: the job stays pending for the next run
                    try:
                        await self.call_job(job, home, lease)
                    except OutputError:
                        continue  # the journal failed; the run is stopping (see RunControl.journal)
        finally:
            downloads.producer_done()

    async def call_job(
        self,
        job: PlannedJob,
        home: PoolKey | None = None,
        lease: list[tuple[PoolKey, object]] | None = None,
    ) -> None:
        """Call the service for the job until it is answered, fails, or the run stops.

        ``lease``: a slot already held for the first attempt (taken from the list once used;
        released here if never used).
        """
        lease = lease if lease is not None else []
        try:
            await self._attempts(job, home, lease)
        finally:
            for key, token in lease:
                key.pacer.release(token)
            lease.clear()

    async def _attempts(
        self, job: PlannedJob, home: PoolKey | None, lease: list[tuple[PoolKey, object]]
    ) -> None:
        config = self._config
        backoff, pool = self._backoff, self._pool
        home = home or pool.roomiest() or pool.keys[0]
        journal, downloads = self._journal, self._downloads
        last_error: ApiError | TransportError | None = None
        # Calls that lost their answer may each have been billed: at most --max-attempts of
        # them per job, counted over runs, then the job fails (see the end of this method).
        billed_attempts = self.lost_before.pop(job.id, 0)
        attempt = 0
        while attempt < config.max_attempts:
            attempt += 1
            if self._control.stopping:
                return
            if billed_attempts >= config.max_attempts:
                attempt -= 1  # no call made now
                break
            while not self._cap.reserve(job.max_new_images):
                if self._cap.reserved == 0:  # nothing in flight can free room: cap reached
                    self._control.request_stop(
                        f"--max-images {config.max_images} reached "
                        f"({self._cap.bought} images generated in this folder)",
                        ExitCode.CAPPED,
                    )
                    return
                # Wait without holding a key's slot: the call that would free room may need it.
                for key, token in lease:
                    key.pacer.release(token)
                lease.clear()
                with self._control.interruptible():
                    await self._cap.wait_release()
                if self._control.stopping:
                    return
            # A task an earlier run journaled is polled with the key that submitted it (#1),
            # never bought again with another.
            if job.id in pool.keys[0].client.journaled_jobs:
                home = pool.keys[0]
                for key, token in [held for held in lease if held[0] is not home]:
                    key.pacer.release(token)
                    lease.remove((key, token))
            got = lease.pop() if lease else pool.try_acquire(home)
            if got is not None and got[0].retired is not None:  # retired while the slot was held
                got[0].pacer.release(got[1])
                got = pool.try_acquire(pool.roomiest() or got[0])
            if got is None:
                with self._control.interruptible():
                    got = await pool.acquire(home)
                if got is None:
                    self._cap.release(job.max_new_images)
                    return  # a stop request ended the wait (or no key is left: stopping)
            key, token = got
            pacer, client = key.pacer, key.client
            if self._control.stopping:
                pacer.release(token)
                self._cap.release(job.max_new_images)
                return
            call = next(self._control.call_numbers)
            self._control.in_flight[call] = self._control.clock.monotonic()
            try:
                try:
                    self._summary.calls += 1
                    key.calls += 1
                    self._control.emit(ev.CallStarted(job.id, attempt))
                    result = await client.generate(
                        job.body, interleave=job.interleave, job_id=job.id
                    )
                except anyio.get_cancelled_exc_class():
                    # A journaled task is not lost: the next run polls it.
                    if not (isinstance(client, TaskClient) and client.waiting_on(job.id)):
                        self._outcomes.abandoned(journal, job, attempt)
                    raise
                finally:
                    del self._control.in_flight[call]
                    pacer.release(token)
            except (ApiError, TransportError) as exc:
                self._cap.release(job.max_new_images)
                last_error = exc
                billed_attempts += isinstance(exc, TransportError) and exc.possibly_billed
                transport_stop = self._control.streaks.note_failure(exc)
                if isinstance(exc, Throttled):
                    pacer.on_throttle(exc.retry_after)
                    self._summary.throttled += 1
                    key.throttled += 1
                    self._control.emit(
                        ev.ThrottledEvent(job.id, exc.code, pool.limit(), exc.retry_after)
                    )
                if isinstance(exc, BatchFatal) and pool.several:
                    retired = account_fatal(exc.status, exc.code)
                    if retired:  # this account cannot go on; the job goes to the other keys
                        self._outcomes.retire(key, exc)
                    again = retired and pool.active > 0
                    self._outcomes.attempt_failed(journal, job, attempt, exc, will_retry=again)
                    if again:
                        attempt -= 1  # the account's fault, not the job's: no attempt used
                        continue
                    self._control.request_stop(
                        f"the service refused the batch ({key.label}): {exc}. To go on, "
                        f"{exc.hint}; then run again to resume"
                        if pool.active
                        else f"every API key of the pool was refused (last, {key.label}: {exc}). "
                        f"To go on, {exc.hint}; then run again to resume",
                        ExitCode.FATAL,
                    )
                    return
                if isinstance(exc, BatchFatal):
                    self._outcomes.attempt_failed(journal, job, attempt, exc, will_retry=False)
                    self._control.request_stop(
                        f"the service refused the batch: {exc}. To go on, {exc.hint}; then run "
                        "again to resume",
                        ExitCode.FATAL,
                    )
                    return
                if isinstance(
                    exc, JobRejected
                ) and not self._control.streaks.foreign_before_success(exc):
                    self._outcomes.fail(journal, job, attempt, exc)
                    return
                will_retry = (
                    attempt < config.max_attempts
                    and billed_attempts < config.max_attempts
                    and transport_stop is None
                )
                self._outcomes.attempt_failed(journal, job, attempt, exc, will_retry=will_retry)
                if transport_stop is not None:
                    self._control.request_stop(transport_stop, ExitCode.FATAL)
                    return  # the job stays pending
                if not will_retry:
                    break
                self._summary.retries += 1
                retry_after = exc.retry_after if isinstance(exc, ApiError) else None
                delay = backoff.delay(
                    attempt, retry_after=retry_after, rand=self._control.rand.random()
                )
                with self._control.interruptible():
                    await self._control.clock.sleep(delay)
                continue
            except OutputError as exc:
                self._cap.release(job.max_new_images)
                self._control.request_stop(str(exc), ExitCode.FATAL)
                return
            except TaskLeft:  # the run stopped; the journaled task is polled by the next run
                self._cap.release(job.max_new_images)
                return
            pacer.on_success()
            key.succeeded += 1
            key.images += len(result.result.image_urls)
            self._cap.release(job.max_new_images)
            if result.clock_offset is not None:  # the answer's Date header
                self._control.clock_offset = result.clock_offset
            self._control.streaks.succeeded(result.duration)
            self._outcomes.accepted(
                job, attempt, result.result, result.duration, journal, downloads, cut=result.cut
            )
            # Back-pressure: when downloads fall behind, calls wait (outside their slot), so
            # the queue, and memory, stay bounded however fast the service answers.
            await downloads.wait_below(self._download_backlog)
            return
        if last_error is None:  # earlier runs lost this job's answers max-attempts times
            last_error = ResponseLost(
                f"{billed_attempts} earlier calls lost their answer (each possibly billed)"
            )
        if isinstance(last_error, ConnectFailed) or self._control.streaks.foreign_before_success(
            last_error
        ):
            # Never sent (so never billed), or not the service that answered: not this job's
            # fault, every job would fail the same way. The job stays pending (a later run
            # calls it without --retry-failed).
            self._control.request_stop(
                self._control.streaks.unreachable(last_error, attempts=attempt), ExitCode.FATAL
            )
            return
        # Attempts that lost their answer may each have been billed. Failing the job for good
        # keeps the money bounded across runs too: a script that runs the batch again until it
        # succeeds does not buy this job again and again; --retry-failed does, by choice. (A lost
        # answer common to all jobs, e.g. a too short --timeout, stops the batch before this:
        # see CallStreaks.note_failure.)
        self._outcomes.fail(
            journal, job, config.max_attempts, last_error, gave_up=True, billed=billed_attempts
        )
