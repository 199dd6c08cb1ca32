"""The simplest batch a user would write instead of wanbatch: a thread pool over the official SDK.

``python benchmarks/naive_sdk.py JOBS OUT BASE_URL [--threads 20] [--no-download]``

A fixed pool of ``--threads`` threads; each job: ``dashscope.MultiModalConversation.call(...)``
(editing mode, ``n=1``, the job's prompt and reference image), on a 429 sleep 1 s and call again,
on success download the image URL with ``urllib`` straight to ``OUT/images/<id>-0.png``.
Anything else is a failure of the job. Attempts are capped (100) only so the benchmark always
stops. Prints one JSON line: done, failed, calls, 429s, seconds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dashscope
from dashscope import MultiModalConversation

KEY = "sk-bench-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs")
    parser.add_argument("out")
    parser.add_argument("base_url")
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--no-download", action="store_true")
    args = parser.parse_args()
    dashscope.base_http_api_url = args.base_url
    images = Path(args.out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    jobs = [json.loads(line) for line in Path(args.jobs).read_text().splitlines() if line]
    lock = threading.Lock()
    stats = {"done": 0, "failed": 0, "calls": 0, "throttled": 0}

    def bump(name: str) -> None:
        with lock:
            stats[name] += 1

    def one(job: dict) -> None:
        content = [{"text": job["prompt"]}] + [{"image": i} for i in job.get("images", [])]
        for _ in range(100):
            bump("calls")
            response = MultiModalConversation.call(
                api_key=KEY,
                model="wan2.6-image",
                messages=[{"role": "user", "content": content}],
                n=1,
            )
            if response.status_code == 429:
                bump("throttled")
                time.sleep(1)
                continue
            if response.status_code != 200:
                bump("failed")
                return
            if not args.no_download:
                for k, choice in enumerate(response.output.choices):
                    for item in choice.message.content:
                        if "image" in item:
                            with urllib.request.urlopen(item["image"], timeout=120) as answer:
                                (images / f"{job['id']}-{k}.png").write_bytes(answer.read())
            bump("done")
            return
        bump("failed")

    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(one, jobs))
    stats["seconds"] = time.perf_counter() - started  # type: ignore[assignment]
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
