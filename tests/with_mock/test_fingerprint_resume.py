"""A job's recorded request fingerprint is only ever compared, whatever text it holds: one
that starts with ``#`` (which once marked the short fingerprint of a packed done job) is a
fingerprint like any other, and the folder resumes as usual."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import journal_records, write_jobs
from wanbatch import BatchConfig, Secret, run_batch
from wanbatch.mock import ThreadedMock

pytestmark = pytest.mark.anyio

CACHES = (".state-snapshot", ".resume-prefix", ".views-state")


def _config(mock: ThreadedMock) -> BatchConfig:
    return BatchConfig(base_url=mock.base_url, api_key=Secret("k"), rps=None)


@pytest.mark.parametrize("kind", ["not hex", "like a short fingerprint"])
async def test_a_recorded_fingerprint_starting_with_a_hash_resumes_right(
    tmp_path: Path, dashscope_mock: ThreadedMock, kind: str
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"h{i}", "prompt": f"hash {i}"} for i in range(2)]
    )
    out = tmp_path / "out"
    assert (await run_batch(jobs, out, _config(dashscope_mock))).exit_code == 0
    # As if the run had stopped before h0's image was saved, its generated record carrying a
    # fingerprint that starts with "#" (the URL it holds is still valid).
    records = journal_records(out)
    (real,) = [r["fp"] for r in records if r["event"] == "generated" and r["id"] == "h0"]
    odd = "#zz-not-hex" if kind == "not hex" else f"#{real[:7]}"
    kept = []
    for record in records:
        if record.get("id") == "h0" and record["event"] == "saved":
            continue
        if record.get("id") == "h0" and record["event"] == "generated":
            record["fp"] = odd
        kept.append(json.dumps(record) + "\n")
    (out / "journal.jsonl").write_text("".join(kept))
    (out / "images" / "h0-0.png").unlink()
    for name in CACHES:
        (out / name).unlink(missing_ok=True)
    calls = dashscope_mock.counters().calls

    summary = await run_batch(jobs, out, _config(dashscope_mock))
    assert summary.exit_code == 0
    assert summary.images_saved_this_run == 1 and summary.jobs_failed == 0
    assert dashscope_mock.counters().calls == calls  # the paid image downloaded, not bought
    assert (out / "images" / "h0-0.png").exists()
    # "#..." is not the job file's fingerprint: the journal's request differs from the line's.
    assert summary.changed_jobs == 1
    rows = (out / "metadata.jsonl").read_text().splitlines()
    assert sorted(json.loads(row)["id"] for row in rows) == ["h0", "h1"]
    # And once done (packed: 28 bits of the fingerprint kept), a resume skips it.
    again = await run_batch(jobs, out, _config(dashscope_mock))
    assert again.exit_code == 0 and dashscope_mock.counters().calls == calls
