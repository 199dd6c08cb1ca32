"""The floor: the least a client must do for a batch, as a minimal hand-written aiohttp loop.

``python benchmarks/floor.py JOBS OUT BASE_URL [--concurrency 16]``

For every line of JOBS (editing-mode jobs: ``id``, ``prompt``, ``images``): POST the same body
wanbatch sends (``model``, ``input.messages``, ``parameters: {n: 1, enable_interleave: false}``),
parse the JSON answer, GET each image URL and stream it to ``OUT/images/<id>-<k>.png``.
Nothing else: no validation, journal, retries, pacing, verification or progress. ``--concurrency``
workers each do call-then-download. ``--durable`` adds what a crash-safe writer must do: write to
a temp name, then ``fsync`` and rename to the final name (one worker-thread hop). Prints one JSON
line: jobs done, images, bytes, seconds and the CPU seconds spent after imports (``run_cpu_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from pathlib import Path

import aiohttp


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _finish(tmp: Path, dest: Path, fd: int) -> None:
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, dest)


async def run(
    jobs: Path, out: Path, base_url: str, concurrency: int, durable: bool = False
) -> dict[str, float]:
    url = base_url.rstrip("/") + "/services/aigc/multimodal-generation/generation"
    headers = {"Authorization": "Bearer sk-bench-0123456789", "Content-Type": "application/json"}
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    stats = {"done": 0, "failed": 0, "images": 0, "bytes": 0}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        with jobs.open(encoding="utf-8") as lines:

            async def worker() -> None:
                for line in lines:  # the file iterator is shared: each line goes to one worker
                    job = json.loads(line)
                    content = [{"text": job["prompt"]}] + [{"image": i} for i in job["images"]]
                    body = {
                        "model": "wan2.6-image",
                        "input": {"messages": [{"role": "user", "content": content}]},
                        "parameters": {"n": 1, "enable_interleave": False},
                    }
                    async with session.post(url, data=json.dumps(body), headers=headers) as resp:
                        answer = await resp.json()
                    if resp.status != 200:
                        stats["failed"] += 1
                        continue
                    for k, choice in enumerate(answer["output"]["choices"]):
                        for item in choice["message"]["content"]:
                            if "image" not in item:
                                continue
                            dest = images / f"{job['id']}-{k}.png"
                            path = dest.with_suffix(".part") if durable else dest
                            async with session.get(item["image"]) as resp:
                                with open(path, "wb") as fh:
                                    async for chunk in resp.content.iter_chunked(256 * 1024):
                                        fh.write(chunk)
                                        stats["bytes"] += len(chunk)
                                    if durable:
                                        fd = os.dup(fh.fileno())
                            if durable:
                                await asyncio.to_thread(_finish, path, dest, fd)
                            stats["images"] += 1
                    stats["done"] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("base_url")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--durable", action="store_true", help="temp file, fsync, rename")
    args = parser.parse_args()
    c0, t0 = cpu(), time.perf_counter()
    stats = asyncio.run(run(args.jobs, args.out, args.base_url, args.concurrency, args.durable))
    print(json.dumps({**stats, "run_s": time.perf_counter() - t0, "run_cpu_s": cpu() - c0}))


if __name__ == "__main__":
    main()
