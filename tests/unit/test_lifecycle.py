"""The job lifecycle's transition table is what the journal fold does (pure: no files)."""

from __future__ import annotations

import json

import pytest

from wanbatch import _lifecycle, _state
from wanbatch._lifecycle import COMPLETE, TRANSITIONS, Status
from wanbatch._records import EVENTS
from wanbatch._snapshot import state_header
from wanbatch._state import RunState, replay

GENERATED, EXPIRED, FAILED, DONE = Status.GENERATED, Status.EXPIRED, Status.FAILED, Status.DONE


def rec(event: str, **fields: object) -> str:
    return json.dumps({"v": 1, "ts": 0, "event": event, **fields})


def generated(n: int = 2) -> str:
    images = [{"url": f"http://h/a-{k}.png", "expires": None} for k in range(n)]
    return rec("generated", id="a", fp="f1", images=images)


def saved(k: int) -> str:
    return rec("saved", id="a", k=k, file=f"images/a-{k}.png")


EXPIRED_0 = rec("expired", id="a", k=0)
FAILED_REC = rec("failed", id="a", code="InvalidParameter", message="no")
META = rec("meta", id="a", fp="f1", gen_line=1, images=1, line=5)

#: How each job status of the table's "before" side is reached (None: a new job).
BEFORE: dict[Status | None, list[str]] = {
    None: [],
    GENERATED: [generated()],
    EXPIRED: [generated(), EXPIRED_0],
    FAILED: [FAILED_REC],
}

#: One journal record per row of the table: the record that takes job "a" along that row.
#: ``(before, COMPLETE)`` rows are reached by the record that saves a generation's last image.
ROWS: dict[tuple[Status | None, str], tuple[list[str], str]] = {
    (None, "generated"): (BEFORE[None], generated()),
    (GENERATED, "generated"): (BEFORE[GENERATED], generated()),
    (EXPIRED, "generated"): (BEFORE[EXPIRED], generated()),
    (FAILED, "generated"): (BEFORE[FAILED], generated()),
    (GENERATED, "saved"): (BEFORE[GENERATED], saved(0)),
    (EXPIRED, "saved"): (BEFORE[EXPIRED], saved(1)),
    (GENERATED, COMPLETE): ([generated(), saved(0)], saved(1)),
    (EXPIRED, COMPLETE): ([generated(), saved(0), rec("expired", id="a", k=1)], saved(1)),
    (GENERATED, "expired"): (BEFORE[GENERATED], EXPIRED_0),
    (None, "meta"): (BEFORE[None], META),
    (FAILED, "meta"): (BEFORE[FAILED], META),
    (None, "failed"): (BEFORE[None], FAILED_REC),
    (GENERATED, "failed"): (BEFORE[GENERATED], FAILED_REC),
    (EXPIRED, "failed"): (BEFORE[EXPIRED], FAILED_REC),
    (FAILED, "failed"): (BEFORE[FAILED], FAILED_REC),
}


def status_of(state: RunState) -> Status | None:
    job = state.job("a")
    return job.status if job is not None else None


def test_every_row_of_the_table_has_a_case() -> None:
    # A row added to the table without a case here fails this test.
    assert set(ROWS) == set(TRANSITIONS)
    # The table names only the journal's events (and the fold's COMPLETE).
    assert {event for _, event in TRANSITIONS} <= {*EVENTS, COMPLETE}


@pytest.mark.parametrize("row", list(ROWS), ids=lambda row: f"{row}")
def test_each_transition_is_taken_by_the_fold(
    row: tuple[Status | None, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before, _event = row
    prefix, record = ROWS[row]
    state = replay(prefix)
    assert status_of(state) is before
    looked_up: list[tuple[Status | None, str]] = []

    def spy(status: Status | None, event: str) -> Status | None:
        looked_up.append((status, event))
        return _lifecycle.transition(status, event)

    monkeypatch.setattr(_state, "transition", spy)
    replay([record], state)
    assert row in looked_up, f"the fold never looked up {row}: {looked_up}"
    assert status_of(state) is TRANSITIONS[row]
    assert state.damaged == []


@pytest.mark.parametrize(
    ("before", "record"),
    [
        (None, saved(0)),
        (None, EXPIRED_0),
        (EXPIRED, rec("expired", id="a", k=1)),
        (FAILED, saved(0)),
        (FAILED, EXPIRED_0),
        (GENERATED, META),
        (EXPIRED, META),
        (GENERATED, rec("rated", id="a", stars=5)),  # an event of a later wanbatch
    ],
)
def test_a_pair_not_in_the_table_leaves_the_job_as_it_is(
    before: Status | None, record: str
) -> None:
    event = json.loads(record)["event"]
    assert (before, event) not in TRANSITIONS
    state = replay(BEFORE[before])
    snapshot, done = state_header(state), state.done.to_bytes()
    replay([record], state)
    assert {**state_header(state), "lines": 0} == {**snapshot, "lines": 0}
    assert state.done.to_bytes() == done and status_of(state) is before


def test_the_fold_follows_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # Drop a row: the fold no longer takes it, so the table is what decides.
    monkeypatch.delitem(TRANSITIONS, (GENERATED, "expired"))
    state = replay([generated(), EXPIRED_0])
    job = state.job("a")
    assert job is not None and job.status is GENERATED and job.expiries == 0
