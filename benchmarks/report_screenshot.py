"""Write ``docs/report.png``: a screenshot of the demo run's report page.

Run by hand (not collected by pytest)::

    .venv/bin/python benchmarks/report_screenshot.py [--out docs/report.png]

Runs ``wanbatch run jobs/demo.jsonl --mock`` into a temporary folder (plus one job whose
prompt the mock refuses, so the failed-jobs list shows), opens its ``report.html`` in Debian's
headless Chromium and saves the page's top as a PNG.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.browser_helpers import CHROMEDRIVER, CHROMIUM, headless_chromium  # noqa: E402

REFUSED = {"id": "refused", "prompt": "a photo the service refuses (moderation)", "seed": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args()
    if not (CHROMIUM and CHROMEDRIVER):
        print("report_screenshot: needs chromium and chromium-driver (apt-get install ...)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        jobs = Path(tmp) / "jobs.jsonl"
        demo = (REPO / "jobs" / "demo.jsonl").read_text(encoding="utf-8")
        jobs.write_text(demo + json.dumps(REFUSED) + "\n", encoding="utf-8")
        images = REPO / "jobs" / "images"  # the demo's reference images
        if images.is_dir():
            (Path(tmp) / "images").mkdir()
            for image in images.iterdir():
                (Path(tmp) / "images" / image.name).write_bytes(image.read_bytes())
        out = Path(tmp) / "demo-run"
        # The mock refuses prompts holding the trigger word, as the service's moderation does.
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wanbatch",
                "mock",
                "--port",
                "0",
                "--latency",
                "0.3",
                "--inspection-trigger",
                "refuses",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            base_url = server.stdout.readline().strip()
            env = {
                "DASHSCOPE_API_KEY": "sk-demo",
                "DASHSCOPE_HTTP_BASE_URL": base_url,
                "PATH": "/usr/bin:/bin",
            }
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "wanbatch",
                    "run",
                    str(jobs),
                    "--out",
                    str(out),
                    "--no-progress",
                    "--concurrency",
                    "2",
                ],
                env=env,
                check=False,
            )
        finally:
            server.terminate()
            server.wait()
        page = out / "report.html"
        with headless_chromium(args.width, args.height) as driver:
            driver.get(page.as_uri())
            driver.execute_script(
                "return Promise.all(Array.from(document.images).map(i => i.decode()"
                ".catch(() => null)))"
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
