"""The journal fold and the resume plan (pure: no files, no loop)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wanbatch._errors import JournalError
from wanbatch._lifecycle import Status
from wanbatch._plan import MAX_REGENERATIONS, Action, expiry_cause, plan_job
from wanbatch._snapshot import job_from_json, job_to_json
from wanbatch._state import JobState, replay


def rec(event: str, **fields: object) -> str:
    return json.dumps({"v": 1, "ts": 0, "event": event, **fields})


def generated(job_id: str, n: int = 2, expires: float = 2_000.0, fp: str = "f1") -> str:
    images = [
        {"url": f"http://h/{job_id}-{k}.png?Expires={int(expires)}", "expires": expires}
        for k in range(n)
    ]
    return rec("generated", id=job_id, fp=fp, images=images)


def saved(job_id: str, k: int) -> str:
    return rec("saved", id=job_id, k=k, file=f"images/{job_id}-{k}.png")


def test_generated_then_all_saved_is_done_and_urls_dropped() -> None:
    state = replay([rec("run", jobs_file="j.jsonl"), generated("a"), saved("a", 0), saved("a", 1)])
    job = state.job("a")
    assert job.status is Status.DONE
    assert job.images == ()
    assert state.images_generated == 2
    assert state.runs == 1


def test_partially_saved_job_plans_only_missing_downloads() -> None:
    state = replay([generated("a", n=3), saved("a", 1)])
    plan = plan_job(state.job("a"), "f1", retry_failed=False)
    assert plan.action is Action.DOWNLOAD
    assert [k for k, _, _ in plan.downloads] == [0, 2]


def test_urls_past_expires_are_tried_and_only_the_stores_word_regenerates() -> None:
    # Expires= long past by any clock: still a download (free); no call is planned.
    state = replay([generated("a", expires=1_000.0)])
    plan = plan_job(state.job("a"), "f1", retry_failed=False)
    assert plan.action is Action.DOWNLOAD and [k for k, _, _ in plan.downloads] == [0, 1]
    # The store said it expired (an expired record): generated again, or failed when told not to.
    state = replay([generated("a", expires=1_000.0), rec("expired", id="a", k=0)])
    plan = plan_job(state.job("a"), "f1", retry_failed=False)
    assert plan.action is Action.CALL and plan.regenerate
    plan = plan_job(state.job("a"), "f1", retry_failed=False, regenerate_expired=False)
    assert plan.action is Action.FAIL  # recorded as failed, so it is listed in failed.jsonl


def test_expired_generations_are_counted_and_bounded_then_fail() -> None:
    lines = [generated("a", n=2, expires=1_000.0)]
    counts = []
    for _ in range(3):
        # Both images' records of one generation count it once.
        lines += [rec("expired", id="a", k=0), rec("expired", id="a", k=1)]
        state = replay(lines)
        counts.append(state.job("a").expiries)
        plan = plan_job(state.job("a"), "f1", retry_failed=False)
        lines.append(generated("a", n=2, expires=1_000.0))
        if counts[-1] <= MAX_REGENERATIONS:
            assert plan.action is Action.CALL and plan.expiries == counts[-1]
        else:
            assert plan.action is Action.FAIL
    assert counts == [1, 2, 3] and MAX_REGENERATIONS == 2
    # A 4th generation is downloaded as any other (its count travels with the plan).
    state = replay(lines)
    plan = plan_job(state.job("a"), "f1", retry_failed=False)
    assert plan.action is Action.DOWNLOAD and plan.expiries == 3
    # A failure resets the count: --retry-failed starts afresh with the same bound.
    state = replay([*lines, rec("failed", id="a", code="UrlExpired", message="x")])
    assert state.job("a").expiries == 0
    assert plan_job(state.job("a"), "f1", retry_failed=True).action is Action.CALL


def test_the_count_survives_a_snapshot() -> None:
    state = replay([generated("a", expires=1_000.0), rec("expired", id="a", k=0)])
    assert job_from_json(job_to_json(state.job("a"))).expiries == 1


def test_the_services_clock_offset_is_read_and_bounded() -> None:
    ours = 200_000.0
    line = json.loads(generated("a", expires=ours - 3_600.0))
    line["clock_offset"] = -90_000
    state = replay([json.dumps(line)])
    assert state.clock_offset == -90_000
    # Absurd or mistyped offsets are not a clock.
    line["clock_offset"] = 1e300
    assert replay([json.dumps(line)]).clock_offset == 0.0
    line["clock_offset"] = "soon"
    assert replay([json.dumps(line)]).clock_offset == 0.0
    # An int too large for a float: ignored, and the paid generation is kept (not damaged).
    line["clock_offset"] = 10**400
    state = replay([json.dumps(line)])
    assert state.clock_offset == 0.0 and not state.damaged and state.job("a") is not None


@pytest.mark.parametrize(
    ("lifetime", "waited", "offset", "words"),
    [
        (0.0, 0.1, 0.0, "valid for only 0 s"),
        (86_400.0, 86_500.0, 0.0, "download stage is too slow"),
        (86_400.0, 0.2, 0.0, "clock skew between the service and its store"),
        (None, None, -90_000.0, "ahead of the service's"),
        (None, None, 0.0, "longer than they are valid"),
    ],
)
def test_expiry_cause_names_the_likely_cause(
    lifetime: float | None, waited: float | None, offset: float, words: str
) -> None:
    assert words in expiry_cause(lifetime=lifetime, waited=waited, clock_offset=offset)


def test_failed_job_skipped_unless_retry_failed() -> None:
    state = replay([rec("failed", id="a", code="InvalidParameter", message="bad", fp="f1")])
    assert plan_job(state.job("a"), "f1", retry_failed=False).action is Action.SKIP_FAILED
    assert plan_job(state.job("a"), "f1", retry_failed=True).action is Action.CALL


def test_done_job_never_undone_by_a_later_failure() -> None:
    state = replay([generated("a", n=1), saved("a", 0), rec("failed", id="a", code="X")])
    assert state.job("a").status is Status.DONE


def test_changed_fingerprint_is_reported() -> None:
    state = replay([generated("a", n=1), saved("a", 0)])
    assert plan_job(state.job("a"), "other", retry_failed=False).changed
    assert not plan_job(state.job("a"), "f1", retry_failed=False).changed


def test_a_recorded_fingerprint_starting_with_a_hash_is_compared_whole() -> None:
    fp = "ab" * 32
    for recorded in ("#zz", f"#{fp[:7]}"):  # "#" once marked a packed done job's 28 bits
        job = replay([generated("a", n=1, fp=recorded)]).job("a")  # generated, not done
        assert job.short_fp is None and job.fp == recorded
        assert plan_job(job, fp, retry_failed=False).changed
        assert not plan_job(job, recorded, retry_failed=False).changed


def test_a_done_job_keeps_28_bits_of_its_fingerprint_in_a_field_of_their_own() -> None:
    fp = "ab" * 32
    job = replay([generated("a", n=1, fp=fp), saved("a", 0)]).job("a")
    assert job.status is Status.DONE and job.fp == "" and job.short_fp == int(fp[:7], 16)
    assert not plan_job(job, fp, retry_failed=False).changed
    assert plan_job(job, "cd" * 32, retry_failed=False).changed


def test_new_job_is_called() -> None:
    assert plan_job(None, "f", retry_failed=False).action is Action.CALL


def test_torn_last_line_and_garbage_are_skipped_and_reported() -> None:
    lines = [generated("a", n=1), saved("a", 0), '{"v":1,"event":"gen']
    state = replay(lines)
    assert state.job("a").status is Status.DONE
    assert state.damaged == [3]


def test_newer_format_is_a_clear_error() -> None:
    with pytest.raises(JournalError, match="newer wanbatch"):
        replay([rec("run"), json.dumps({"v": 99, "event": "run"})])


def test_a_huge_format_version_is_damage_not_a_newer_format() -> None:
    state = replay([rec("run"), json.dumps({"v": 10**30, "event": "run"}), generated("a")])
    assert state.damaged == [2] and state.runs == 1 and state.job("a") is not None


def test_attempt_records_count_throttles_and_possibly_billed() -> None:
    state = replay(
        [
            rec("attempt", id="a", status=429, code="Throttling.RateQuota"),
            rec("attempt", id="a", status=None, code="ResponseLost", possibly_billed=True),
        ]
    )
    assert (state.failed_attempts, state.throttled, state.possibly_billed) == (2, 1, 1)


def test_regeneration_resets_saved_images() -> None:
    state = replay(
        [generated("a", n=2), saved("a", 0), rec("expired", id="a", k=1), generated("a", n=2)]
    )
    job = state.job("a")
    assert job.status is Status.GENERATED
    assert job.saved == 0
    assert state.images_generated == 4


# A valid journal of a few jobs, written in a realistic order.
@st.composite
def journals(draw: st.DrawFn) -> list[str]:
    lines = [rec("run", jobs_file="j.jsonl")]
    for j in range(draw(st.integers(1, 5))):
        job_id = f"job{j}"
        n = draw(st.integers(1, 3))
        outcome = draw(st.sampled_from(["done", "partial", "failed", "expired"]))
        if outcome == "failed":
            lines.append(rec("attempt", id=job_id, status=500, code="InternalError"))
            lines.append(rec("failed", id=job_id, code="InvalidParameter", message="x"))
            continue
        lines.append(generated(job_id, n=n))
        upto = n if outcome == "done" else draw(st.integers(0, n - 1))
        lines.extend(saved(job_id, k) for k in range(upto))
        if outcome == "expired":
            lines.append(rec("expired", id=job_id, k=upto))
    return lines


def _consistent(job: JobState) -> None:
    if job.status is Status.DONE:
        assert job.images == ()
    elif job.status in (Status.GENERATED, Status.EXPIRED):
        assert job.saved.bit_count() < len(job.images)
        assert job.saved >> len(job.images) == 0
    elif job.status is Status.FAILED:
        assert job.failure is not None


@given(journals(), st.data())
def test_any_prefix_of_a_valid_journal_replays_consistently(
    lines: list[str], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(lines)))
    prefix = lines[:cut]
    # Optionally a torn copy of the next line, as a crash mid-write leaves it.
    if cut < len(lines) and data.draw(st.booleans()):
        nxt = lines[cut]
        prefix = [*prefix, nxt[: data.draw(st.integers(1, len(nxt) - 1))]]
    state = replay(prefix)
    ids = [f"job{j}" for j in range(5)]
    for job_id in ids:
        job = state.job(job_id)
        if job is None:
            continue
        _consistent(job)
        plan = plan_job(job, "f1", retry_failed=False)
        if job.status is Status.DONE:
            assert plan.action is Action.SKIP_DONE
        if job.status is Status.GENERATED:
            assert plan.action is Action.DOWNLOAD
            assert len(plan.downloads) == len(job.images) - job.saved.bit_count()
    full = replay(lines)
    # Replaying more of the journal never loses a finished job.
    for job_id in ids:
        job = state.job(job_id)
        if job is not None and job.status is Status.DONE:
            full_job = full.job(job_id)
            assert full_job is not None and full_job.status is Status.DONE


def test_done_jobs_later_records_win_across_a_snapshot_and_a_merge() -> None:
    from wanbatch._donejobs import DoneJobs

    done = DoneJobs()
    for i in range(50):
        done.add(f"j{i}", "aaaaaaa0", gen_line=i + 1, images=1, line=i + 100)
    done.add("j7", "bbbbbbb0", gen_line=99, images=3, line=7)  # a later generation of j7
    assert done.get("j7") == (0xBBBBBBB, 99, 3) and len(done) == 50
    again = DoneJobs.from_bytes(done.to_bytes())
    again.add("j3", "ccccccc0", gen_line=200, images=2, line=5)  # merged into the sorted part
    again.add("new", "ddddddd0", gen_line=201, images=1, line=9)
    assert len(again) == 51
    assert again.get("j3") == (0xCCCCCCC, 200, 2) and again.get("new") == (0xDDDDDDD, 201, 1)
    assert again.get("j7") == (0xBBBBBBB, 99, 3) and again.get("j49") == (0xAAAAAAA, 50, 1)
    assert again.get("missing") is None
    assert again.unchanged("j3", 5) and not again.unchanged("j3", 6)
    assert again.images() == 50 - 2 + 3 + 2 + 1  # j7 and j3 replaced, one new


def test_done_jobs_sorted_in_runs_when_large(monkeypatch: pytest.MonkeyPatch) -> None:
    from wanbatch import _donejobs

    monkeypatch.setattr(_donejobs, "SORT_RUN", 8)  # force the run-and-merge path
    done = _donejobs.DoneJobs()
    for i in range(100):
        done.add(f"j{i}", "0000000", gen_line=i + 1, images=1, line=i + 1)
    done.add("j42", "0000000", gen_line=500, images=2, line=1)  # later record, other run
    assert len(done) == 100
    assert done.get("j42") == (0, 500, 2)
    assert all(done.get(f"j{i}") is not None for i in range(100))


@pytest.mark.parametrize(
    "record",
    [
        {"event": "saved", "id": "a", "k": "x", "file": "f"},
        {"event": "saved", "id": "a", "k": 10**30, "file": "f"},
        {"event": "saved", "id": "a", "k": -1, "file": "f"},
        {"event": "saved", "id": "a", "k": True, "file": "f"},
        {"event": "saved", "id": "a", "k": 1e308, "file": "f"},
        {"event": "expired", "id": "a", "k": "0"},
        {"event": "generated", "id": "b", "images": 5},
        {"event": "generated", "id": "b", "images": [{"url": 5, "expires": None}]},
        {"event": "generated", "id": "b", "images": [{"url": "u", "expires": 10**400}]},
        {"event": "generated", "id": "b", "images": [{"url": "u", "expires": "2000"}]},
        {"event": "generated", "id": "b", "images": [{"url": "u", "expires": -1}]},
        {"event": "generated", "id": "b", "images": [{"url": "u", "expires": float("inf")}]},
        {"event": "generated", "id": "b", "images": [{"url": "u", "expires": float("nan")}]},
        {"event": "generated", "id": "b", "images": [{"url": "u"}] * 16},
        {"event": "generated", "id": "b", "images": [], "line": 2**40},
        {"event": "generated", "id": "b", "images": [], "fp": 5},
        {"event": "run", "jobs_file": ["x"]},
        {"event": "failed", "id": 10**30},
    ],
)
def test_a_record_with_a_wrong_type_or_a_number_out_of_range_is_damaged(
    record: dict[str, object],
) -> None:
    lines = [generated("a", n=1), rec("run", jobs_file="j.jsonl"), json.dumps(record)]
    state = replay(lines)
    assert state.damaged == [3]
    assert state.job("a").status is Status.GENERATED and state.job("b") is None
    assert state.images_generated == 1 and state.runs == 1


def test_a_field_the_fold_does_not_read_never_drops_a_paid_generation() -> None:
    record = json.loads(generated("a", n=1))
    record.update(attempt=1e308, usage="x", texts=5, request_id=[1], duration=10**400)
    state = replay([json.dumps(record)])
    assert state.damaged == [] and state.job("a").status is Status.GENERATED
    plan = plan_job(state.job("a"), "f1", retry_failed=False)
    assert plan.action is Action.DOWNLOAD


def test_a_line_nested_past_the_parsers_depth_is_damaged() -> None:
    state = replay([generated("a", n=1), "[" * 100_000 + "]" * 100_000, saved("a", 0)])
    assert state.damaged == [2] and state.job("a").status is Status.DONE


def test_every_expiry_a_url_can_give_is_folded() -> None:
    from wanbatch._urls import parse_expiry

    for url in ("http://h/a.png?Expires=0", "http://h/a.png?Expires=1e300", "http://h/a?x=1"):
        images = [{"url": url, "expires": parse_expiry(url)}]
        state = replay([rec("generated", id="a", images=images)])
        assert state.damaged == [] and state.job("a").status is Status.GENERATED, url
