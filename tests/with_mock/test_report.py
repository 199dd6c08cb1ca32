"""The report page of a real run, opened in a real headless Chromium; ``wanbatch report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import console_errors, headless_chromium, requested_urls, require_browser
from tests.conftest import CANARY_KEY, run_cli, write_jobs

SCRIPT_PROMPT = "<script>window.__injected = 1</script> a cat made of <b>glass</b> & light"
JOBS: list[dict[str, Any]] = [
    {"id": "lighthouse", "prompt": "A lighthouse on a rocky coast at dusk", "seed": 1},
    {"id": "fox", "prompt": "A red fox in a snowy forest", "seed": 2},
    {"id": "fox-night", "prompt": "A red fox under the stars", "seed": 3},
    {"id": "glass-cat", "prompt": SCRIPT_PROMPT, "seed": 4},
    {"id": "refused", "prompt": "a forbidden-subject photo", "seed": 5},
]


def _run(tmp_path: Path, mock: Any, *extra: str) -> tuple[Path, dict[str, Any]]:
    jobs = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    out = tmp_path / "out"
    env = {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
    result = run_cli("run", str(jobs), "--out", str(out), "--no-progress", *extra, env=env)
    assert result.returncode == 1, result.stderr  # one job refused: exit 1
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_the_report_of_a_real_run_in_a_headless_browser(
    tmp_path: Path, dashscope_mock_factory: Any
) -> None:
    require_browser()
    mock = dashscope_mock_factory(inspection_triggers=["forbidden-subject"])
    out, summary = _run(tmp_path, mock)
    assert summary["images_on_disk"] == 4 and summary["warnings"] == []
    page = out / "report.html"
    html = page.read_text(encoding="utf-8")
    assert "<script>window.__injected" not in html  # escaped in the markup and in the data
    assert "http://" not in html and "https://" not in html

    with headless_chromium() as driver:
        driver.get(page.as_uri())
        assert driver.execute_script("return document.body.dataset.ready") == "1"

        def text(selector: str) -> str:
            return str(
                driver.execute_script(f"return document.querySelector('{selector}').textContent")
            )

        def cards() -> int:
            return int(
                driver.execute_script("return document.querySelectorAll('#grid .card').length")
            )

        # The page's image count equals the run's, and the grid shows them all (one page).
        assert text("#image-count") == str(summary["images_on_disk"])
        assert cards() == summary["images_on_disk"]
        assert text("#jobs-done") == "4" and text("#jobs-failed") == "1"
        # Every image is shown, loaded from its relative path.
        loaded = driver.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
            ".map(i => i.getAttribute('src'))"
        )
        assert sorted(loaded) == sorted(f"images/{j['id']}-0.png" for j in JOBS[:4])

        # The <script> prompt is text: shown as written, never run.
        assert driver.execute_script("return window.__injected") is None
        prompts = driver.execute_script(
            "return Array.from(document.querySelectorAll('#grid .prompt')).map(p => p.textContent)"
        )
        assert SCRIPT_PROMPT in prompts

        # Search filters by prompt text (case-insensitive), and clearing it shows all again.
        search = driver.find_element("id", "search")
        search.send_keys("RED FOX")
        driver.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 5).until(lambda d: "match" in text("#match-count"))
        assert text("#match-count") == "2 images match" and cards() == 2
        search.send_keys("<script>")  # "red fox<script>": nothing
        WebDriverWait(driver, 5).until(lambda d: text("#match-count") == "0 images match")
        assert cards() == 0
        search.clear()
        search.send_keys("<script>")
        WebDriverWait(driver, 5).until(lambda d: text("#match-count") == "1 image match")
        assert text("#grid .prompt") == SCRIPT_PROMPT
        search.clear()
        driver.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
        WebDriverWait(driver, 5).until(lambda d: cards() == 4)

        # The failed job, with its reason.
        assert "refused" in text("#failed") and "DataInspectionFailed" in text("#failed")

        # Nothing left the machine: every request the page made was for a local file.
        urls = requested_urls(driver)
        assert urls, "the network log is empty: it would prove nothing"
        assert all(url.startswith("file://") for url in urls), urls
        # And the console logged no error.
        assert console_errors(driver) == []


def test_report_command_writes_the_page_again(tmp_path: Path, dashscope_mock_factory: Any) -> None:
    mock = dashscope_mock_factory(inspection_triggers=["forbidden-subject"])
    out, _summary = _run(tmp_path, mock)
    (out / "report.html").unlink()
    result = run_cli("report", str(out), "--price", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "report.html")
    html = (out / "report.html").read_text(encoding="utf-8")
    # 4 images bought at 2 CNY each.
    assert '<b id="spent">8.00 CNY</b>' in html
    assert "&lt;script&gt;window.__injected" in html  # the first page, rendered and escaped
    # A damaged view row (a lone surrogate, which UTF-8 cannot hold) does not stop the page.
    with (out / "metadata.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"file_name": "images/x-0.png", "id": "x", "prompt": "bad \\ud800 row"}\n')
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    assert "bad ? row" in (out / "report.html").read_text(encoding="utf-8")


def test_report_command_on_a_folder_without_a_run(tmp_path: Path) -> None:
    result = run_cli("report", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "no such folder" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and "holds no run" in result.stderr


def test_a_report_that_cannot_be_written_does_not_fail_the_run(
    tmp_path: Path, dashscope_mock_factory: Any
) -> None:
    mock = dashscope_mock_factory(inspection_triggers=["forbidden-subject"])
    blocker = tmp_path / "out" / "report.html"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("a folder where the page would go", encoding="utf-8")
    _, summary = _run(tmp_path, mock)
    assert summary["jobs_done"] == 4 and summary["exit_code"] == 1  # the failed job's 1
    assert len(summary["warnings"]) == 1 and "report.html" in summary["warnings"][0]


@pytest.mark.parametrize("runs", [1, 2])
def test_a_dry_run_uses_the_call_time_measured_in_the_folder(
    tmp_path: Path, dashscope_mock_factory: Any, runs: int
) -> None:
    mock = dashscope_mock_factory(latency=0.25)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": f"j{i}", "prompt": f"picture {i}"} for i in range(10)]
    )
    out = tmp_path / "out"
    env = {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": mock.base_url}
    dry = run_cli("run", str(jobs), "--out", str(out), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "10 calls ÷ 5 in flight × 90 s a call (wan2.6-image default)" in dry.stderr + dry.stdout
    for i in range(runs):  # earlier runs: 3 calls each, then --max-images stops them
        cap = str(3 * (i + 1))
        result = run_cli(
            "run", str(jobs), "--out", str(out), "--no-progress", "--max-images", cap, env=env
        )
        assert result.returncode == 4, result.stderr
    dry = run_cli("run", str(jobs), "--out", str(out), "--dry-run", "--concurrency", "2", env=env)
    text = dry.stderr + dry.stdout
    calls = 3 * runs
    assert f"median of {calls} calls measured in this folder" in text, text
    figure = float(text.split(f"{10 - calls} calls ÷ 2 in flight × ")[1].split(" s a call")[0])
    assert 0.25 <= figure < 2.0  # the mock's latency, plus the call's own time


def test_models_in_the_time_plan_and_the_report(tmp_path: Path, dashscope_mock: Any) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "new", "prompt": "a red fox", "model": "wan2.7-image", "size": "1K"},
            {"id": "old", "prompt": "a blue fox"},
        ],
    )
    out = tmp_path / "out"
    env = {"DASHSCOPE_API_KEY": CANARY_KEY, "DASHSCOPE_HTTP_BASE_URL": dashscope_mock.base_url}
    dry = run_cli("run", str(jobs), "--out", str(out), "--dry-run", env=env)
    assert "(1 × 90 s a call (wan2.6-image default) + 1 × 60 s a call (wan2.7-image default))" in (
        dry.stderr + dry.stdout
    )
    result = run_cli("run", str(jobs), "--out", str(out), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    first_page = html[html.index('id="grid"') : html.index("<h2>Failed jobs")]
    assert first_page.count("wan2.7-image") == 1 and first_page.count("wan2.6-image") == 1
