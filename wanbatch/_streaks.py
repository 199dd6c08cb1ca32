"""The streaks of failed calls that stop a batch: a service out of reach, a server that is not
the API, answers lost (each possibly billed) one after another.

Every call's outcome is told to one :class:`CallStreaks`; a failure it returns a reason for
stops the batch, because retrying every job could not help (or would pay for answers never
seen).
"""

from __future__ import annotations

from wanbatch._errors import ApiError, ConnectFailed, ResponseLost, TransportError

__all__ = [
    "FOREIGN_ANSWERS_TO_STOP",
    "LOST_ANSWERS_TO_STOP",
    "UNREACHABLE_AFTER",
    "CallStreaks",
    "error_fields",
]

#: Calls in a row that could not connect, with no call of this run having reached the service,
#: after which the batch stops (a wrong base URL, no network): seconds, not minutes of retries.
UNREACHABLE_AFTER = 3
#: Answers with no sign of the DashScope API in a row, with no call of this run succeeded,
#: after which the batch stops (a wrong base URL reaching some other web server).
FOREIGN_ANSWERS_TO_STOP = 5
#: Calls whose answer was lost (each possibly billed) since the run's last successful call,
#: after which the batch stops buying; twice the concurrency instead when that is more.
LOST_ANSWERS_TO_STOP = 10


class CallStreaks:
    """The run's answered calls and its streaks of failed ones."""

    def __init__(self, base_url: str, *, concurrency: int, call_timeout: float) -> None:
        self._base_url = base_url
        self._concurrency = concurrency
        self._call_timeout = call_timeout
        #: Answered calls and their total time (the typical call a stop waits for).
        self.answered = 0
        self.answered_s = 0.0
        #: Whether a call of this run reached the service (an answer of any kind).
        self.reached = False
        self.connect_failures = 0
        self.lost_since_success = 0
        self.foreign_answers = 0

    def succeeded(self, duration: float) -> None:
        """A call was answered with images: every streak ends."""
        self.reached, self.connect_failures, self.lost_since_success = True, 0, 0
        self.answered_s += duration
        self.answered += 1

    def foreign_before_success(self, exc: ApiError | TransportError) -> bool:
        """An answer that is not the API's while no call of this run has succeeded: the base
        URL is suspect, so the answer says nothing about the job."""
        return isinstance(exc, ApiError) and exc.foreign and self.answered == 0

    def unreachable(self, exc: ApiError | TransportError, *, attempts: int = 0) -> str:
        where = self._base_url
        if isinstance(exc, ApiError):
            return (
                f"the server at {where} does not answer like the DashScope API: "
                f"{attempts or self.foreign_answers} answers without a request id or an error "
                f"code of the service (last: HTTP {exc.status}: {exc.message[:120]}), and no "
                "call succeeded. Check --base-url / --region (or DASHSCOPE_HTTP_BASE_URL); if "
                "it is right, the service's gateway is failing: the jobs stay pending, run the "
                "same command again later"
            )
        if attempts:
            return (
                f"cannot reach the service at {where}: {attempts} attempts of one job failed to "
                f"connect (last: {exc.message}); nothing was sent for them, nothing billed. The "
                "jobs not done stay pending: run the same command again once it is reachable"
            )
        return (
            f"cannot reach the service at {where}: {exc.message}; no call of this run reached it "
            "(nothing sent, nothing billed). Check --base-url / --region (or "
            "DASHSCOPE_HTTP_BASE_URL) and the network; the jobs stay pending: run the same "
            "command again"
        )

    def note_failure(self, exc: ApiError | TransportError) -> str | None:
        """Follow the streaks of failed calls; return why the batch must stop, if it must.

        A call that cannot connect was never sent: when no call of this run reached the service,
        a few in a row mean a wrong URL or no network, and retrying every job cannot help. A lost
        answer may have been billed: when many are lost since the last success (a too short
        timeout, a network that cuts long calls), buying on would pay for answers never seen.
        """
        if isinstance(exc, ConnectFailed):
            self.connect_failures += 1
            if not self.reached and self.connect_failures >= UNREACHABLE_AFTER:
                return self.unreachable(exc)
            return None
        self.reached, self.connect_failures = True, 0
        if self.foreign_before_success(exc):
            self.foreign_answers += 1
            if self.foreign_answers >= FOREIGN_ANSWERS_TO_STOP:
                return self.unreachable(exc)
        if isinstance(exc, ResponseLost):
            self.lost_since_success += 1
            limit = max(LOST_ANSWERS_TO_STOP, 2 * self._concurrency)
            if self.lost_since_success >= limit:
                return (
                    f"{self.lost_since_success} calls lost their answer since the last "
                    f"successful one (last: {exc.message}); each may have been billed, so no "
                    f"more are bought. Check --timeout ({self._call_timeout:g} s; a call "
                    "can take minutes) and the network; the jobs stay pending: run again"
                )
        return None


def error_fields(exc: ApiError | TransportError) -> tuple[str, int | None, str, str | None]:
    if isinstance(exc, ApiError):
        return exc.code, exc.status, exc.message, exc.request_id
    return type(exc).__name__, None, exc.message, None
