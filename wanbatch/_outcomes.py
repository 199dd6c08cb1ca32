"""What a call's outcome writes: the journal record, the summary's counts and the event of an
answer accepted (its images queued for download), a failed attempt, a failed job, a call
abandoned in flight, and a key the service refused for good.

The attempt loop (:mod:`wanbatch._calls`) decides what happened; this module only records it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from wanbatch import _events as ev
from wanbatch._cap import ImageCap
from wanbatch._control import RunControl
from wanbatch._donejobs import line_hash
from wanbatch._downloads import DownloadItem, DownloadQueue, Generations, saved_info
from wanbatch._errors import ApiError, DownloadError, OutputError, TransportError
from wanbatch._jobs import PlannedJob
from wanbatch._journal import Journal
from wanbatch._models import price_for
from wanbatch._pool import KeyPool, PoolKey
from wanbatch._records import abandoned_record, attempt_record, failed_record, generated_record
from wanbatch._streaks import error_fields
from wanbatch._urls import parse_expiry

__all__ = ["CallOutcomes"]


class CallOutcomes:
    """Records the outcomes of the run's calls (one per run, shared by its call workers)."""

    def __init__(
        self,
        control: RunControl,
        *,
        pool: KeyPool,
        cap: ImageCap,
        generations: Generations,
        salt: str,
    ) -> None:
        self._control = control
        self._config = control.config
        self._summary = control.summary
        self._pool = pool
        self._cap = cap
        self._generations = generations
        #: Folded into line_hash() (see BatchRun).
        self._salt = salt
        #: Jobs being generated again after an expiry (summary.regenerated counts answers).
        self.regenerating: set[str] = set()

    def retire(self, key: PoolKey, exc: ApiError) -> None:
        """Retire the key of an account-fatal answer (once), and say so."""
        if key.retired is not None:
            return
        self._pool.retire(key, f"{exc.code}: {exc.message}")
        self._control.emit(
            ev.KeyRetired(key.label, exc.code, exc.message, self._pool.active, len(self._pool.keys))
        )

    def abandoned(self, journal: Journal, job: PlannedJob, attempt: int) -> None:
        """A call in flight was cancelled (abort): the service may still bill it."""
        self._summary.possibly_billed += 1
        # Straight to the journal: this runs while being cancelled; a failed write changes
        # nothing more (the run is ending, and the summary counts it).
        with contextlib.suppress(OutputError):
            journal.append(abandoned_record(job_id=job.id, attempt=attempt))

    def attempt_failed(
        self,
        journal: Journal,
        job: PlannedJob,
        attempt: int,
        exc: ApiError | TransportError,
        *,
        will_retry: bool,
    ) -> None:
        code, status, message, request_id = error_fields(exc)
        billed = bool(getattr(exc, "possibly_billed", False))
        if billed:
            self._summary.possibly_billed += 1
        record = attempt_record(
            job_id=job.id,
            attempt=attempt,
            code=code,
            status=status,
            message=message,
            request_id=request_id,
            possibly_billed=billed,
            retry=will_retry,
        )
        self._control.journal(journal, record)
        self._control.emit(ev.CallFailed(job.id, attempt, code, message, will_retry, billed))

    def fail(
        self,
        journal: Journal,
        job: PlannedJob,
        attempt: int,
        exc: ApiError | TransportError | DownloadError,
        *,
        gave_up: bool = False,
        billed: int = 0,
    ) -> None:
        # Possibly billed calls were counted once, by attempt_failed, as they failed.
        if isinstance(exc, (ApiError, TransportError)):
            code, status, message, request_id = error_fields(exc)
        else:
            code, status, message, request_id = type(exc).__name__, None, str(exc), None
        if gave_up:
            message = f"gave up after {attempt} attempts; last error: {message}"
        if billed:
            message += (
                f" ({billed} of the attempts may have been billed; run with --retry-failed to "
                "try again)"
            )
        record = failed_record(
            job_id=job.id,
            fp=job.fingerprint,
            attempts=attempt,
            code=code,
            status=status,
            message=message,
            request_id=request_id,
            source=job.source,
        )
        self._control.journal(journal, record)
        self._summary.jobs_failed += 1
        self._control.emit(ev.JobFailed(job.id, code, message))

    def accepted(
        self,
        job: PlannedJob,
        attempt: int,
        result: Any,
        duration: float,
        journal: Journal,
        downloads: DownloadQueue,
        *,
        cut: str | None = None,
    ) -> None:
        urls: tuple[str, ...] = tuple(result.image_urls)
        images = [(u, parse_expiry(u)) for u in urls]
        usage = dict(result.usage or {})
        info = saved_info(job, result.request_id, usage.get("size"))
        record = generated_record(
            job_id=job.id,
            model=job.body.get("model"),
            fp=job.fingerprint,
            line=line_hash(job.source, self._salt),
            attempt=attempt,
            request_id=result.request_id,
            images=images,
            texts=result.texts,
            usage=usage,
            info=info,
            duration=duration,
            clock_offset=self._control.clock_offset,
            cut=cut,
        )
        try:
            self._control.journal(journal, record)
        except OutputError as exc:
            # A paid answer that cannot be written down is lost: a later run buys it again.
            self._summary.possibly_billed += 1
            self._control.emit(
                ev.CallFailed(job.id, attempt, "JournalWriteFailed", str(exc), False, True)
            )
            raise
        self._cap.bought += len(urls)
        if job.id in self.regenerating:
            self.regenerating.discard(job.id)
            self._summary.regenerated += 1
        self._summary.calls_succeeded += 1
        self._summary.images_generated_this_run += len(urls)
        self._summary.spent_this_run += len(urls) * price_for(self._config, job.model)
        self._control.emit(ev.Generated(job.id, len(urls), result.request_id))
        gen = self._generations.new(job.id, len(urls))
        arrived = self._control.clock.monotonic()
        for k, (url, exp) in enumerate(images):
            downloads.put(
                DownloadItem(
                    exp if exp is not None else math.inf, 0, job, k, url, gen, info, arrived
                )
            )
        if not urls:
            self._generations.forget(job.id)
            self._summary.jobs_done += 1
            self._control.emit(ev.JobDone(job.id, 0))
