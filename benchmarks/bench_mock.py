"""Throughput of the mock server: generation calls per second and image MB/s on loopback.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_mock.py [--calls 5000] [--connections 64] [--downloads 60]

The mock runs in its own process (``python -m wanbatch.mock``, no latency, no stand-in image
size, ``--image-style noise``: photo-sized PNGs, so MB/s measures streaming), the load comes from
``--clients`` other processes, so neither side steals the other's core. Targets: >= 1,000
calls/s and >= 200 MB/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import multiprocessing
import subprocess
import sys
import time
from typing import Any

import aiohttp

CALL_TARGET = 1000.0
MB_TARGET = 200.0
KEY = {"Authorization": "Bearer bench"}


def tiny_png_uri() -> str:
    """A 240x240 solid PNG (the smallest size the API accepts), a few hundred bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (240, 240), (90, 140, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def edit_body(index: int, image: str) -> bytes:
    return json.dumps(
        {
            "model": "wan2.6-image",
            "parameters": {"n": 1, "size": "1K", "seed": index},
            "input": {
                "messages": [{"role": "user", "content": [{"text": f"p{index}"}, {"image": image}]}]
            },
        }
    ).encode()


async def _calls(base_url: str, calls: int, connections: int, offset: int) -> tuple[int, int]:
    image = tiny_png_uri()
    bodies = [edit_body(offset + i, image) for i in range(calls)]
    url = base_url + "/services/aigc/multimodal-generation/generation"
    headers = {**KEY, "Content-Type": "application/json"}
    ok = failed = 0
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok, failed
            for payload in queue:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return ok, failed


def _call_process(args: tuple[str, int, int, int]) -> tuple[int, int]:
    return asyncio.run(_calls(*args))


async def _downloads(base_url: str, downloads: int, connections: int) -> tuple[int, float, str]:
    url = base_url + "/services/aigc/multimodal-generation/generation"
    body = edit_body(0, tiny_png_uri()).replace(b'"1K"', b'"2048*2048"')
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=KEY) as response:
            answer: dict[str, Any] = await response.json()
        image_url = answer["output"]["choices"][0]["message"]["content"][0]["image"]
        async with session.get(image_url) as response:  # warm the PNG cache
            await response.read()
        total = 0
        remaining = iter(range(downloads))

        async def worker() -> None:
            nonlocal total
            for _ in remaining:
                async with session.get(image_url) as response:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        total += len(chunk)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return total, elapsed, answer["usage"]["size"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64, help="per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes for calls")
    parser.add_argument("--downloads", type=int, default=60)
    parser.add_argument("--download-connections", type=int, default=4)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "wanbatch.mock", "--port", "0", "--image-style", "noise"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        per_client = args.calls // args.clients
        jobs = [
            (base_url, per_client, args.connections, i * per_client) for i in range(args.clients)
        ]
        # Warm-up: connections, imports and the 1K PNG path.
        asyncio.run(_calls(base_url, 200, 16, 10**6))
        with multiprocessing.Pool(args.clients) as pool:
            started = time.perf_counter()
            results = pool.map(_call_process, jobs)
            elapsed = time.perf_counter() - started
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        rate = (ok + failed) / elapsed

        total, seconds, size = asyncio.run(
            _downloads(base_url, args.downloads, args.download_connections)
        )
        mb_per_s = total / seconds / 1e6
    finally:
        server.terminate()
        server.wait(timeout=20)

    rows = [
        (
            "edit calls",
            f"{ok + failed} ({failed} failed)",
            f"{elapsed:.2f} s",
            f"{rate:,.0f} calls/s",
            f">= {CALL_TARGET:,.0f}",
            "ok" if rate >= CALL_TARGET and not failed else "MISS",
        ),
        (
            f"downloads {size}",
            f"{args.downloads} x {total / args.downloads / 1e6:.1f} MB",
            f"{seconds:.2f} s",
            f"{mb_per_s:,.0f} MB/s",
            f">= {MB_TARGET:,.0f}",
            "ok" if mb_per_s >= MB_TARGET else "MISS",
        ),
    ]
    header = ("what", "count", "time", "throughput", "target", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if rate >= CALL_TARGET and mb_per_s >= MB_TARGET and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
