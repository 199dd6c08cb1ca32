"""Every model end to end: the example job files of the wan2.7 capabilities run against the
mock, dry-run prices per model, the region check, and the hosts a run calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, png_info, run_cli, write_jobs
from wanbatch import BatchConfig, ExitCode, InvalidJobs, Secret, run_batch
from wanbatch._cli import _base_url_for
from wanbatch._cli_options import build_parser
from wanbatch.mock import MockConfig, serve_in_thread

pytestmark = pytest.mark.anyio

EXAMPLES = REPO / "jobs" / "examples"
WAN27_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("wan27-*.jsonl"))


@pytest.fixture
def mock() -> Iterator[Any]:
    with serve_in_thread(MockConfig(seed=3)) as handle:
        yield handle


def config(base_url: str, **changes: Any) -> BatchConfig:
    return BatchConfig(base_url=base_url, api_key=Secret("sk-test"), rps=None).replace(**changes)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_there_is_one_example_per_new_capability() -> None:
    assert WAN27_EXAMPLES == [
        "wan27-box-edit.jsonl",
        "wan27-color-palette.jsonl",
        "wan27-image-set.jsonl",
        "wan27-multi-reference.jsonl",
        "wan27-pro-4k.jsonl",
        "wan27-text-to-image.jsonl",
    ]
    (multi,) = lines(EXAMPLES / "wan27-multi-reference.jsonl")
    assert len(multi["images"]) == 9
    (pro,) = lines(EXAMPLES / "wan27-pro-4k.jsonl")
    assert (pro["model"], pro["size"]) == ("wan2.7-image-pro", "4K")


@pytest.mark.parametrize("name", WAN27_EXAMPLES)
async def test_example_runs_end_to_end(name: str, mock: Any, tmp_path: Path) -> None:
    jobs_path = EXAMPLES / name
    jobs = {job["id"]: job for job in lines(jobs_path)}
    plan = await run_batch(jobs_path, tmp_path / "plan", config(mock.base_url), dry_run=True)
    planned = plan.plan["images_max"]
    assert planned == sum(job.get("n", 1) for job in jobs.values())

    out = tmp_path / "out"
    summary = await run_batch(jobs_path, out, config(mock.base_url))
    assert summary.exit_code == ExitCode.OK, summary
    billed = mock.counters().images_generated
    sets = any(job.get("enable_sequential") for job in jobs.values())
    if sets:  # a set is a maximum: the model may make fewer, and only those are billed
        assert 1 <= billed <= planned
    else:
        assert billed == planned
    assert summary.images_generated_this_run == billed

    rows = lines(out / "metadata.jsonl")
    files = sorted(p.name for p in (out / "images").glob("*.png"))
    assert len(rows) == len(files) == billed
    assert sorted(Path(row["file_name"]).name for row in rows) == files
    for row in rows:
        assert row["model"] == jobs[row["id"]]["model"]
        width, height = png_info(out / row["file_name"])
        assert f"{width}*{height}" == row["size"]
    if name == "wan27-pro-4k.jsonl":
        assert {row["size"] for row in rows} == {"4096*4096"}


async def test_a_set_may_return_fewer_images_than_n_and_the_run_takes_them(
    mock: Any, tmp_path: Path
) -> None:
    # Seeds chosen so that the mock makes fewer than asked for some and all for others.
    jobs = [
        {"id": f"set{s}", "model": "wan2.7-image", "prompt": "four seasons", "seed": s,
         "enable_sequential": True, "n": 5}
        for s in range(6)
    ]  # fmt: skip
    path = write_jobs(tmp_path / "sets.jsonl", jobs)
    summary = await run_batch(path, tmp_path / "out", config(mock.base_url))
    assert summary.exit_code == ExitCode.OK
    per_job: dict[str, int] = {}
    for row in lines(tmp_path / "out" / "metadata.jsonl"):
        per_job[row["id"]] = per_job.get(row["id"], 0) + 1
    assert set(per_job) == {job["id"] for job in jobs}
    assert min(per_job.values()) < 5 and max(per_job.values()) == 5
    assert sum(per_job.values()) == mock.counters().images_generated
    # The same request gets the same count: a second run is a resume and buys nothing.
    again = await run_batch(path, tmp_path / "out", config(mock.base_url))
    assert again.images_generated_this_run == 0 and again.exit_code == ExitCode.OK


async def test_dry_run_prices_each_job_at_its_model_and_sets_at_their_maximum(
    tmp_path: Path,
) -> None:
    jobs = [
        {"id": "a", "prompt": "a fox", "images": ["https://example.com/a.png"]},
        {"id": "b", "model": "wan2.7-image", "prompt": "a fox", "n": 3},
        {"id": "c", "model": "wan2.7-image-pro", "prompt": "a fox", "enable_sequential": True,
         "n": 12},
    ]  # fmt: skip
    path = write_jobs(tmp_path / "mixed.jsonl", jobs)
    workspace_sg = "https://ws-abc123.ap-southeast-1.maas.aliyuncs.com/api/v1"
    for base_url, prices in (
        ("https://dashscope.aliyuncs.com/api/v1", (0.20, 0.20, 0.50)),
        (workspace_sg, (0.220177, 0.220177, 0.562065)),
    ):
        summary = await run_batch(path, tmp_path / "out", config(base_url), dry_run=True)
        assert summary.plan["images_max"] == 1 + 3 + 12
        expected = prices[0] * 1 + prices[1] * 3 + prices[2] * 12
        assert summary.estimated_cost == pytest.approx(expected, abs=1e-4)
    # --price applies to every model.
    summary = await run_batch(
        path, tmp_path / "out", config(base_url, price_per_image=1.0), dry_run=True
    )
    assert summary.estimated_cost == 16.0


async def test_a_model_not_offered_in_the_region_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    path = write_jobs(
        tmp_path / "j.jsonl",
        [
            {"id": "old", "prompt": "a fox", "images": ["https://example.com/a.png"]},
            {"id": "new", "model": "wan2.7-image", "prompt": "a fox"},
        ],
    )
    us = config("https://dashscope-us.aliyuncs.com/api/v1")
    with pytest.raises(InvalidJobs) as info:
        await run_batch(path, tmp_path / "out", us, dry_run=True)
    (error,) = info.value.errors
    assert (error.line, error.field) == (2, "model")
    assert "wan2.7-image is not offered in region us" in error.message
    assert "--region cn or --region intl" in error.message
    assert not (tmp_path / "out").exists()


def test_cli_names_the_region_rule_and_exits_2(tmp_path: Path) -> None:
    path = write_jobs(tmp_path / "j.jsonl", [{"model": "wan2.7-image-pro", "prompt": "a fox"}])
    result = run_cli("run", str(path), "--out", str(tmp_path / "o"), "--region", "us", "--dry-run")
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert f"{path}:1: model: wan2.7-image-pro is not offered in region us" in result.stderr
    ok = run_cli("run", str(path), "--out", str(tmp_path / "o"), "--region", "cn", "--dry-run")
    assert ok.returncode == 0, ok.stderr
    assert "at most 0.50 CNY" in ok.stderr


def test_cli_run_wide_model_applies_to_jobs_that_name_none(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path / "j.jsonl",
        [{"prompt": "a fox", "size": "4K"}, {"prompt": "a cat", "model": "wan2.7-image"}],
    )
    bad = run_cli("validate", str(path), "--model", "wan2.7-image")
    assert bad.returncode == 2
    assert "1: size: '4K' is not offered by wan2.7-image" in bad.stdout
    good = run_cli("validate", str(path), "--model", "wan2.7-image-pro")
    assert good.returncode == 0, good.stdout


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, "https://dashscope-intl.aliyuncs.com/api/v1"),
        (["--region", "cn"], {}, "https://dashscope.aliyuncs.com/api/v1"),
        (["--workspace", "ws-a1"], {}, "https://ws-a1.ap-southeast-1.maas.aliyuncs.com/api/v1"),
        (
            ["--workspace", "llm-b2", "--region", "cn"],
            {},
            "https://llm-b2.cn-beijing.maas.aliyuncs.com/api/v1",
        ),
        (
            ["--region", "cn"],
            {"DASHSCOPE_WORKSPACE_ID": "ws-env"},
            "https://ws-env.cn-beijing.maas.aliyuncs.com/api/v1",
        ),
        (
            ["--base-url", "http://127.0.0.1:9/api/v1"],
            {"DASHSCOPE_WORKSPACE_ID": "ws-env"},
            "http://127.0.0.1:9/api/v1",
        ),
        ([], {"DASHSCOPE_HTTP_BASE_URL": "https://proxy.example/api/v1"}, "https://proxy.example/api/v1"),
        ([], {"DASHSCOPE_WORKSPACE_ID": "Bad Id"}, None),
    ],
)  # fmt: skip
def test_the_base_url_a_run_calls(
    argv: list[str], env: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(["run", "jobs.jsonl", "--out", "o", *argv])
    assert _base_url_for(args) == expected


def test_wan27_reference_images_must_be_within_1_to_8(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (2000, 240)).save(tmp_path / "wide.png")  # 8.3:1
    Image.new("RGB", (1920, 240)).save(tmp_path / "eight.png")  # 8:1
    path = write_jobs(
        tmp_path / "j.jsonl",
        [
            {"model": "wan2.6-image", "prompt": "a", "images": ["wide.png"]},
            {"model": "wan2.7-image", "prompt": "b", "images": ["eight.png", "wide.png"]},
            {"model": "wan2.7-image-pro", "prompt": "c", "images": ["wide.png"]},
        ],
    )
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert result.stdout.splitlines()[:2] == [
        f"{path}:2: images[1]: image is 2000x240 px; wan2.7-image takes reference images with "
        "an aspect ratio within 1:8 to 8:1",
        f"{path}:3: images[0]: image is 2000x240 px; wan2.7-image-pro takes reference images "
        "with an aspect ratio within 1:8 to 8:1",
    ]


def test_cli_refuses_a_workspace_with_a_base_url(tmp_path: Path) -> None:
    path = write_jobs(tmp_path / "j.jsonl", [{"prompt": "a fox"}])
    result = run_cli(
        "run", str(path), "--out", str(tmp_path / "o"), "--workspace", "ws-a", "--mock"
    )
    assert result.returncode == ExitCode.USAGE
    assert "--workspace" in result.stderr
