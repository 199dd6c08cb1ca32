"""Benchmark: the report page of a 100,000-image run folder: write time, and open time in a
real headless Chromium.

Run by hand (not collected by pytest)::

    .venv/bin/python benchmarks/bench_report.py [--images 100000] [--keep DIR]

It writes a synthetic run folder: a journal of ``--images`` one-image jobs (a ``generated`` and
a ``saved`` record each, spread over ten hours of two runs, and one failed job in 1,000), the
views made from it by wanbatch's own code, and one tiny PNG hard-linked under every image name.
Then it times :func:`wanbatch._report.write_report` (reading the journal, the views, rendering),
and opens the page from disk in Debian's headless Chromium (chromedriver): the time from the
navigation to the page's script being ready (grid data parsed, first page shown), and a search
over every prompt.

Targets (2-core machine): the page opens in < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._common import png_rgb  # noqa: E402
from tests.browser_helpers import (  # noqa: E402
    CHROMEDRIVER,
    CHROMIUM,
    console_errors,
    headless_chromium,
    requested_urls,
)
from wanbatch._journal import read_journal  # noqa: E402
from wanbatch._report import write_report  # noqa: E402
from wanbatch._views import write_views  # noqa: E402

TARGET_OPEN_S = 3.0
WORDS = "red fox lighthouse cat glass forest river night snow city harbour garden".split()


def make_folder(out: Path, images: int) -> None:
    """A run folder of ``images`` one-image jobs (and a failed job in 1,000)."""
    (out / "images").mkdir(parents=True)
    tiny = out / ".tiny.png"
    tiny.write_bytes(png_rgb(64, 64))
    tiny_bytes = tiny.stat().st_size
    t0 = 1_790_000_000.0
    span = 5 * 3600  # each of the two runs lasts five hours
    with (out / "journal.jsonl").open("w", encoding="utf-8") as fh:

        def rec(ts: float, event: str, **fields: object) -> None:
            record = {"v": 1, "ts": round(ts, 3), "event": event, **fields}
            fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

        half = images // 2
        for run, (first, last) in enumerate(((0, half), (half, images + images // 1000))):
            start = t0 + run * 86400
            rec(
                start,
                "run",
                jobs_file="/data/jobs.jsonl",
                version="0.1.0",
                jobs=images + images // 1000,
                endpoint="https://dashscope-intl.aliyuncs.com/api/v1",
                mock=False,
            )
            for i in range(first, last):
                ts = start + (i - first + 1) * span / (last - first)
                job = f"job-{i:07d}"
                prompt = f"{WORDS[i % len(WORDS)]} {WORDS[(i // 7) % len(WORDS)]} picture {i}"
                if i >= images:  # the failed ones
                    source = json.dumps({"id": job, "prompt": prompt})
                    rec(
                        ts,
                        "failed",
                        id=job,
                        code="DataInspectionFailed",
                        message="Input data may contain inappropriate content.",
                        status=400,
                        request_id=f"req-{i}",
                        attempts=1,
                        source=source,
                    )
                    continue
                rec(
                    ts - 60,
                    "generated",
                    id=job,
                    model="wan2.6-image",
                    fp=f"{i:064x}",
                    line=i,
                    attempt=1,
                    request_id=f"req-{i}",
                    images=[{"url": f"https://example.invalid/{i}.png?Expires=1", "expires": 1.0}],
                    texts=[],
                    usage={"image_count": 1, "size": "1280*1280"},
                    prompt=prompt,
                    seed=i,
                    size="1280*1280",
                    meta={"split": "train"},
                    duration=60.0,
                    clock_offset=0,
                )
                name = f"images/{job}-0.png"
                rec(
                    ts,
                    "saved",
                    id=job,
                    k=0,
                    file=name,
                    bytes=tiny_bytes,
                    sha256="0" * 64,
                    width=1280,
                    height=1280,
                    prompt=prompt,
                    seed=i,
                    size="1280*1280",
                    request_id=f"req-{i}",
                    meta={"split": "train"},
                )
                if i % 50_000 == 0:  # a file system allows some 65,000 links to a file
                    link_from = out / f".tiny-{i}.png"
                    link_from.write_bytes(tiny.read_bytes())
                os.link(link_from, out / name)
                if i % 50_000 == 49_999 or i == images - 1:
                    link_from.unlink()
            rec(start + span, "end", stopped=None)
    tiny.unlink()
    write_views(out, read_journal(out, write_snapshot=True))  # as a run's end leaves it


def open_in_browser(page: Path) -> dict[str, float]:
    with headless_chromium() as driver:
        t = time.perf_counter()
        driver.get(page.as_uri())  # returns at the load event
        ready = driver.execute_script("return document.body.dataset.ready") == "1"
        opened = time.perf_counter() - t
        assert ready, "the page's script did not run"
        nav = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return [n.domContentLoadedEventEnd, n.loadEventEnd]"
        )
        count = driver.execute_script("return document.getElementById('image-count').textContent")
        cards = driver.execute_script("return document.querySelectorAll('#grid .card').length")
        # Search every prompt (the page's own handler, without its typing pause).
        search = driver.execute_script(
            "const s = document.getElementById('search'); s.value = 'lighthouse';"
            "const t = performance.now(); s.dispatchEvent(new Event('input'));"
            "return new Promise(done => setTimeout(() => done([performance.now() - t,"
            " document.getElementById('match-count').textContent]), 130));"
        )
        urls = requested_urls(driver)
        errors = console_errors(driver)
    return {
        "open_s": opened,
        "dom_content_loaded_s": nav[0] / 1000,
        "load_s": nav[1] / 1000,
        "image_count": float(count.replace(",", "")),
        "cards": float(cards),
        "search_with_120ms_pause_ms": float(search[0]),
        "search_matches": float(search[1].split()[0]),
        "non_file_requests": float(sum(not u.startswith("file://") for u in urls)),
        "console_errors": float(len(errors)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 images")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = parser.parse_args()
    images = 10_000 if args.quick else args.images
    if not (CHROMIUM and CHROMEDRIVER):
        print("bench_report: needs chromium and chromium-driver (apt-get install ...)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "run"
        t = time.perf_counter()
        make_folder(out, images)
        print(f"folder of {images:,} images built in {time.perf_counter() - t:.1f} s")
        for when in ("at a run's end (journal snapshot fresh)", "cold (no snapshot)"):
            if when.startswith("cold"):
                (out / ".state-snapshot").unlink()
            t = time.perf_counter()
            page = write_report(out)
            write_s = time.perf_counter() - t
            size_mb = page.stat().st_size / 1e6
            print(
                f"report written {when} in {write_s:.2f} s "
                f"({write_s / images * 1e6:.1f} µs an image), {size_mb:.1f} MB"
            )
        results = [open_in_browser(page) for _ in range(3)]
    for key in results[0]:
        values = ", ".join(f"{r[key]:.3g}" for r in results)
        print(f"  {key}: {values}")
    worst = max(r["open_s"] for r in results)
    ok = worst < TARGET_OPEN_S and all(r["image_count"] == images for r in results)
    print(
        f"opened in {worst:.2f} s at worst (target < {TARGET_OPEN_S} s): {'PASS' if ok else 'FAIL'}"
    )
    print(
        f"| report page: {images:,} images | opened 3 times in headless Chromium "
        f"| **{worst:.2f} s** at worst | < {TARGET_OPEN_S} s | {'ok' if ok else 'MISS'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
