"""Task mode: a call is a task submitted, journaled, then polled until it ends.

:class:`TaskClient` is the run's :class:`~wanbatch._client.ApiClient`. In task mode
(``--mode async``) its :meth:`~TaskClient.generate` submits the job as a task, journals the task
id (a ``submitted`` record) before waiting on it, and polls ``GET /tasks/{id}`` every
``poll_interval`` to twice that seconds (jittered) until the task ends; the result comes back as
a :class:`~wanbatch._client.CallResult`, so the caller journals and downloads it as any other
generation. A failed task raises its :class:`~wanbatch._errors.ApiError` (classified like a
synchronous error answer). The caller's pacer slot is held the whole time: a task counts as in
flight from its submission to its end.

In either mode, a job whose task an earlier run journaled and left open is polled, not bought
again. A journaled task the service no longer knows (``UNKNOWN``: past its retention, or an id
it never issued) or that was cancelled is recorded as such (an ``attempt``) and submitted again.

A stop (first Ctrl-C) ends the waiting at once: :class:`TaskLeft` tells the caller the task goes
on at the service and stays journaled for the next run. An abort (second Ctrl-C) then cancels
the tasks this run left that are still PENDING (:meth:`TaskClient.cancel_pending`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio

from wanbatch._client import ApiClient, CallResult, _clock_offset, _mapped_errors
from wanbatch._clock import SYSTEM_CLOCK, Clock
from wanbatch._config import Secret
from wanbatch._control import RunControl
from wanbatch._errors import ApiError, BatchFatal, OutputError, TransportError, api_error
from wanbatch._journal import Journal
from wanbatch._protocol import build_headers
from wanbatch._records import attempt_record, submitted_record
from wanbatch._summary import ExitCode
from wanbatch._tasks import (
    GONE,
    TASK_SUBMIT_PATH,
    TaskPoll,
    cancel_path,
    parse_poll,
    parse_submit,
    poll_delay,
    task_body,
    task_headers,
    task_path,
)

__all__ = ["MAX_POLL_FAILURES", "TaskClient", "TaskLeft", "settle_left_tasks"]

#: Polls in a row that get no answer about a task (lost, 5xx) before the run stops; the task
#: stays journaled, and the next run polls it again.
MAX_POLL_FAILURES = 30
#: Seconds an abort may spend cancelling the tasks it leaves.
CANCEL_TIMEOUT_S = 10.0
#: After a first Ctrl-C that left PENDING tasks, seconds the run waits for a second one (which
#: cancels them) before it ends.
CANCEL_GRACE_S = 2.0
#: A journaled task not polled yet in this run.
_NOT_POLLED = "?"


class TaskLeft(Exception):
    """The run stopped while waiting on a journaled task: it stays open for the next run."""


class TaskClient(ApiClient):
    """The run's client: synchronous calls, or tasks (``tasks=True``), and journaled tasks."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: Secret,
        *,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
        control: RunControl,
        journal: Journal,
        tasks: bool,
        poll_interval: float,
        open_tasks: Mapping[str, str] = {},
    ) -> None:
        super().__init__(session, base_url, api_key, timeout=timeout, clock=clock)
        self._base = base_url.rstrip("/")
        self._control = control
        self._journal = journal
        self._tasks = tasks
        self._interval = poll_interval
        #: Job id -> task id an earlier run journaled and did not see end.
        self._journaled = dict(open_tasks)
        #: Job id -> [task id, last status seen] of the tasks this run waits on or left.
        self.open: dict[str, list[str]] = {}

    @property
    def journaled_jobs(self) -> Mapping[str, str]:
        """Job id -> task id of the tasks earlier runs journaled that this client will poll."""
        return self._journaled

    def waiting_on(self, job_id: str) -> bool:
        """Whether the job's call is a journaled task (so abandoning it costs nothing)."""
        return job_id in self.open

    async def generate(
        self, body: dict[str, Any], *, interleave: bool, job_id: str | None = None
    ) -> CallResult:
        """A synchronous call, or (task mode, or a task journaled for ``job_id``) a task."""
        task = self._journaled.pop(job_id, None) if job_id is not None else None
        if task is None and not self._tasks:
            return await super().generate(body, interleave=interleave)
        started = self._clock.monotonic()
        resumed = task is not None
        if task is None:
            task = await self._submit(body, job_id)
        return await self._wait(body, job_id, task, started, resumed=resumed)

    # ---------------------------------------------------------------- submit and wait
    async def _submit(self, body: dict[str, Any], job_id: str | None) -> str:
        headers = task_headers(self._api_key.reveal())
        with _mapped_errors():
            async with self._session.post(
                self._base + TASK_SUBMIT_PATH,
                json=task_body(body),
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                raw = self.scrub(await resp.read())
                retry_after = resp.headers.get("Retry-After")
        task, request_id = parse_submit(resp.status, raw, retry_after, now=self._clock.now())
        if job_id is not None:
            # Before any wait: a crash from here on costs nothing, the next run polls it.
            record = submitted_record(job_id=job_id, task=task, request_id=request_id)
            self._control.journal(self._journal, record)
        return task

    async def _wait(
        self,
        body: dict[str, Any],
        job_id: str | None,
        task: str,
        started: float,
        *,
        resumed: bool,
    ) -> CallResult:
        key = job_id if job_id is not None else task
        self.open[key] = [task, _NOT_POLLED if resumed else "PENDING"]
        failures = 0
        wait = not resumed  # a journaled task may have ended long ago: ask at once
        while True:
            if wait:
                delay = poll_delay(self._interval, self._control.rand.random())
                with self._control.interruptible():
                    await self._clock.sleep(delay)
            wait = True
            if self._control.stopping:
                raise TaskLeft(task)
            try:
                poll, offset = await self._poll(task)
            except (ApiError, TransportError) as exc:
                failures += 1
                self._poll_failed(task, exc, failures)
                continue
            failures = 0
            self.open[key][1] = poll.status
            if poll.status == "SUCCEEDED" and poll.result is not None:
                del self.open[key]
                return CallResult(
                    poll.result, self._clock.monotonic() - started, clock_offset=offset
                )
            if poll.status == "FAILED" and poll.error is not None:
                del self.open[key]
                raise poll.error
            if poll.status in GONE:
                del self.open[key]
                if not resumed or job_id is None:
                    raise api_error(
                        200, f"Task{poll.status.title()}", _gone_message(task, poll.status)
                    )
                # A task of an earlier run, gone: written down once, then bought again.
                self._control.journal(
                    self._journal,
                    attempt_record(
                        job_id=job_id,
                        attempt=0,
                        code=f"Task{poll.status.title()}",
                        status=200,
                        message=_gone_message(task, poll.status),
                        request_id=poll.request_id,
                        possibly_billed=poll.status == "UNKNOWN",
                        retry=True,
                    ),
                )
                task, resumed = await self._submit(body, job_id), False
                self.open[key] = [task, "PENDING"]

    def _poll_failed(self, task: str, exc: ApiError | TransportError, failures: int) -> None:
        """A poll got no news: poll again, unless the answer stops the batch or many failed."""
        if isinstance(exc, BatchFatal):
            self._control.request_stop(
                f"the service refused to report task {task}: {exc}. To go on, {exc.hint}; then "
                "run again to resume (the task stays journaled)",
                ExitCode.FATAL,
            )
        elif failures >= MAX_POLL_FAILURES:
            self._control.request_stop(
                f"{failures} polls of task {task} in a row got no answer (last: {exc}); run "
                "again to resume (the task stays journaled)",
                ExitCode.FATAL,
            )

    async def _poll(self, task: str) -> tuple[TaskPoll, float | None]:
        headers = build_headers(self._api_key.reveal(), stream=False)
        with _mapped_errors():
            async with self._session.get(
                self._base + task_path(task), headers=headers, timeout=self._timeout
            ) as resp:
                offset = _clock_offset(resp.headers.get("Date"), self._clock.now())
                raw = self.scrub(await resp.read())
                content_type = resp.headers.get("Content-Type", "")
        return parse_poll(resp.status, raw, content_type), offset

    # ---------------------------------------------------------------- cancel
    def pending(self) -> list[tuple[str, str]]:
        """(job id, task id) of the tasks left that were last seen PENDING (or never polled)."""
        return [
            (job_id, task)
            for job_id, (task, status) in self.open.items()
            if status in ("PENDING", _NOT_POLLED)
        ]

    async def cancel_pending(self) -> int:
        """Cancel the tasks this run left that were last seen PENDING (or never polled).

        The service cancels only a PENDING task; each one cancelled is journaled (an
        ``attempt``, not billed), so the next run submits the job again instead of polling.
        Returns how many were cancelled.
        """
        targets = self.pending()
        cancelled: list[str] = []

        async def cancel(job_id: str, task: str) -> None:
            headers = build_headers(self._api_key.reveal(), stream=False)
            try:
                with _mapped_errors():
                    async with self._session.post(
                        self._base + cancel_path(task), headers=headers, timeout=self._timeout
                    ) as resp:
                        await resp.read()
                        if resp.status != 200:
                            return  # no longer PENDING: it runs to its end, the next run polls
            except (ApiError, TransportError):
                return
            cancelled.append(task)
            del self.open[job_id]
            with contextlib.suppress(OutputError):  # the run is ending; nothing more to do
                self._journal.append(
                    attempt_record(
                        job_id=job_id,
                        attempt=0,
                        code="TaskCanceled",
                        status=None,
                        message=f"task {task} was cancelled while PENDING (the run was aborted)",
                        request_id=None,
                        possibly_billed=False,
                        retry=True,
                    )
                )

        with anyio.move_on_after(CANCEL_TIMEOUT_S, shield=True):
            async with anyio.create_task_group() as tg:
                for job_id, task in targets:
                    tg.start_soon(cancel, job_id, task)
        return len(cancelled)


def _gone_message(task: str, status: str) -> str:
    if status == "UNKNOWN":
        return (
            f"the service no longer knows task {task} (past its 24 h retention, or never "
            "issued): generated again"
        )
    return f"task {task} was cancelled before it ran: generated again"


async def settle_left_tasks(client: TaskClient, control: RunControl) -> None:
    """At the end of the run's work: tasks it left stay for the next run, unless aborted.

    After a first Ctrl-C that left tasks still PENDING, a second one within
    :data:`CANCEL_GRACE_S` (the run waits that long for it) cancels them; so does an abort
    that came earlier. A stop of any other kind (a fatal answer, the image cap) leaves them.
    """
    if not client.open or control.exit_code is not ExitCode.INTERRUPTED:
        return
    if not control.aborted.is_set():
        if not client.pending():
            return
        async with anyio.create_task_group() as tg:

            async def grace() -> None:
                await control.clock.sleep(CANCEL_GRACE_S)
                tg.cancel_scope.cancel()

            tg.start_soon(grace)
            await control.aborted.wait()
            tg.cancel_scope.cancel()
        if not control.aborted.is_set():
            return
    cancelled = await client.cancel_pending()
    left = len(client.open)
    notes = []
    if cancelled:
        notes.append(f"{cancelled} pending task{'s' if cancelled != 1 else ''} cancelled")
    if left:
        notes.append(
            f"{left} task{'s' if left != 1 else ''} already running left to finish at the "
            f"service (the next run collects {'them' if left != 1 else 'it'})"
        )
    control.stop_reason = "; ".join([control.stop_reason or "aborted", *notes])
