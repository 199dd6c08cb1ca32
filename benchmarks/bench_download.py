"""Images/s saving 5 MB PNGs: ``wanbatch._download.download_image`` vs the durable floor.

Run by hand (not part of pytest)::

    .venv/bin/python benchmarks/bench_download.py [--quick] [--images 100] [--rounds 3] \
        [--parallel 4,8] [--dir DIR]

The mock (own process) serves ``--image-size 1296x1296 --image-style noise`` stand-in PNGs: a
noisy gradient in stored-deflate RGB, so one file is ~5.0 MB (the exact size is printed), about
what the service returns for a large image (the mock's default pictures are a few kilobytes).
For each stream count in ``--parallel`` and each variant, one client subprocess gets one signed
image URL and downloads it ``--images`` times a round with that many streams; every round starts
from an empty folder and a ``sync``, so no round pays for the dirty pages of the one before:

- the floor: ``session.get(url)``, ``iter_chunked(256 KiB)``, plain writes to a temp name, then
  ``fsync`` and rename on a worker thread: the least a loop does to have each file on disk and
  never a partial file under its name;
- wanbatch: ``download_image`` as the engine calls it (expiry check, temp file, sha256 of every
  chunk as written, PNG checks, fsync on a worker thread, atomic rename).

Images/s = images / wall seconds of a round; a first warm-up round is not counted; the best round
counts. CPU = the client subprocess's user + system seconds (``os.wait4``, with any process it
started; warm-up and imports included) per image. Files go to the system
temp dir unless ``--dir`` says otherwise; use a real disk (tmpfs makes fsync free).

Target: wanbatch saves >= 50 images/s, i.e. downloading and hashing are never the bottleneck of
a run (the service answers one image per call of tens of seconds per slot).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import KEY, PY, REF_URI, MockProcess, machine, run_measured, table, verdict

TARGET = 50.0  # images/s
SIZE = (1296, 1296)
VARIANTS = ("floor", "wanbatch")


async def child(
    base_url: str, folder: Path, variant: str, images: int, parallel: int, rounds: int
) -> dict[str, Any]:
    import aiohttp

    from wanbatch._download import download_image

    body = {
        "model": "wan2.6-image",
        "input": {"messages": [{"role": "user", "content": [{"text": "x"}, {"image": REF_URI}]}]},
        "parameters": {"n": 1},
    }
    url = base_url + "/services/aigc/multimodal-generation/generation"
    tmp_dir = folder / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    per_round: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
            answer = await r.json()
        image_url = answer["output"]["choices"][0]["message"]["content"][0]["image"]
        async with session.get(image_url) as r:  # warm the mock's PNG cache
            data = await r.read()
        size, expected = len(data), hashlib.sha256(data).hexdigest()

        def finish(tmp: Path, dest: Path, fd: int) -> None:
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, dest)

        async def floor(i: int) -> None:
            tmp = tmp_dir / f"floor-{i}.part"
            async with session.get(image_url) as resp:
                with open(tmp, "wb") as fh:
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        fh.write(chunk)
                    fd = os.dup(fh.fileno())
            await asyncio.to_thread(finish, tmp, folder / f"floor-{i}.png", fd)

        async def wanbatch(i: int) -> None:
            saved = await download_image(
                session,
                image_url,
                folder / f"wb-{i}.png",
                tmp_dir,
                timeout=120,
                max_bytes=64 * 1024 * 1024,
            )
            if saved.sha256 != expected:
                raise SystemExit(f"wrong sha256: {saved.sha256}")

        fn = floor if variant == "floor" else wanbatch
        for round_no in range(rounds + 1):  # round 0 warms up and is not counted
            for path in folder.glob("*.png"):
                path.unlink()
            os.sync()
            todo = iter(range(images))

            async def worker(todo: Iterator[int] = todo) -> None:
                for i in todo:
                    await fn(i)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(parallel)))
            seconds = time.perf_counter() - started
            if round_no:
                per_round.append(images / seconds)
        for path in folder.glob("*.png"):
            path.unlink()
    return {"size": size, "rounds": per_round}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 images, 2 rounds")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument(
        "--parallel", default="4,8", help="stream counts to measure, comma-separated (4,8)"
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--dir",
        default=None,
        help="where the files go (default: the system temp dir; keep it on a real disk)",
    )
    args = parser.parse_args()
    images = args.images or (40 if args.quick else 100)
    rounds = args.rounds or (2 if args.quick else 3)
    if args.child:
        base_url, folder, variant = args.child
        out = asyncio.run(
            child(base_url, Path(folder), variant, images, int(args.parallel), rounds)
        )
        print(json.dumps(out))
        return 0
    streams = [int(x) for x in str(args.parallel).split(",")]
    where = args.dir or tempfile.gettempdir()
    rows: list[list[str]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="wb-download-", dir=args.dir) as name:
        with MockProcess(image_size=SIZE, image_style="noise") as mock:
            for parallel in streams:
                for variant in VARIANTS:
                    argv = [PY, __file__, "--child", mock.base_url, name, variant]
                    argv += ["--images", str(images), "--parallel", str(parallel)]
                    m = run_measured([*argv, "--rounds", str(rounds)])
                    result = m.last_json()
                    best = max(result["rounds"])
                    cpu_ms = m.cpu / (images * (rounds + 1)) * 1e3
                    rounds_text = ", ".join(f"{x:.1f}" for x in result["rounds"])
                    is_target = variant == "wanbatch"
                    if is_target:
                        ok = ok and best >= TARGET
                    rows.append(
                        [
                            "download: wanbatch download_image"
                            if is_target
                            else "download: floor (aiohttp GET, temp file, fsync, rename)",
                            f"{images} x {result['size'] / 1e6:.2f} MB PNG ({SIZE[0]}x{SIZE[1]}),"
                            f" {parallel} streams",
                            f"**{best:.1f} images/s** ({best * result['size'] / 1e6:,.0f} MB/s;"
                            f" rounds: {rounds_text}), CPU {cpu_ms:.1f} ms/image; files in {where}",
                            f">= {TARGET:.0f} images/s" if is_target else "(info)",
                            verdict(best >= TARGET) if is_target else "",
                        ]
                    )
    print(f"<!-- {machine()} -->")
    print(table(["benchmark", "size", "result", "target", ""], rows))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
