"""A 200-image captioning run in the simulator: how long the report takes once the last caption
arrives, and the bot's memory while the 200 captions arrive.

    PYTHONPATH=. python benchmarks/captioning_bench.py [--images 200] [--size 1024]

Starts the bot's services in simulated mode (in-process simulator over HTTP, a real SQLite file),
checks a zip of ``--images`` photo-like JPEGs, prices and runs the captioning workflow, and prints:

  last caption → report   from the moment the 200th caption is read from the workflow to the
                          captioned dataset's report being ready (captions written into a new
                          normalised zip, checked again, contact sheet, digest, stored)
  baseline                the plain dataset check of the same zip (what any /train does), and the
                          first figure as a ratio of it
  RSS                     the process's resident memory before the run and its peak while the
                          captions arrive (sampled every 5 ms), and the difference
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import tempfile
import time
import zipfile
from pathlib import Path

from PIL import Image

from bot.captioning.options import CaptionOptions
from bot.config import CivitaiMode, Settings
from bot.dataset.intake import intake_from_stream
from bot.jobs.policy import Member
from bot.jobs.submission import Requester
from bot.services import Services

REQUESTER = Requester(1, Member(user_id=10, role_ids=frozenset(), channel_id=100))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_zip(images: int, size: int) -> bytes:
    out = io.BytesIO()
    rnd = random.Random(7)
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(images):
            base = Image.frombytes("RGB", (16, 12), rnd.randbytes(16 * 12 * 3))
            image = base.resize((size, size * 3 // 4), Image.Resampling.BICUBIC)
            data = io.BytesIO()
            image.save(data, "JPEG", quality=85)
            archive.writestr(f"photos/img{n:03d}.jpg", data.getvalue())
    return out.getvalue()


async def chunks(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def main(images: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), civitai_mode=CivitaiMode.SIMULATE, http_port=0,
                            http_host="127.0.0.1", simulator_speed=2000)  # fmt: skip
        services = await Services.start(settings)
        try:
            data = build_zip(images, size)
            started = time.perf_counter()
            dataset = await intake_from_stream(chunks(data), settings, trigger_word="sks", store=services.datasets)
            check_seconds = time.perf_counter() - started
            assert dataset.accepted, dataset.to_text()
            options = CaptionOptions.from_user("missing", "sentences", "sks")
            quote = await services.captioning.quote(REQUESTER, options, dataset, {"source": "bench.zip"})
            assert quote is not None

            samples: list[float] = []
            last_caption_at: list[float] = []
            sampling = True

            async def sample() -> None:
                while sampling:
                    samples.append(rss_mib())
                    await asyncio.sleep(0.005)

            async def progress(done: int, total: int) -> None:
                if done == total:
                    last_caption_at.append(time.perf_counter())

            before = rss_mib()
            sampler = asyncio.create_task(sample())
            outcome = await services.captioning.run(quote.run.id, REQUESTER, progress)
            report_at = time.perf_counter()
            sampling = False
            await sampler
            assert outcome is not None and outcome.summary.generated == images
            to_report = report_at - last_caption_at[0]
            print(f"images: {images} ({size}×{size * 3 // 4} JPEG), captions: {outcome.summary.generated}")
            print(f"last caption → report updated: {to_report:.2f} s")
            print(f"baseline (plain dataset check of the same zip): {check_seconds:.2f} s; "
                  f"ratio {to_report / check_seconds:.2f}×")  # fmt: skip
            print(f"RSS before: {before:.0f} MiB; peak while captions arrive: {max(samples):.0f} MiB "
                  f"(+{max(samples) - before:.0f} MiB, {len(samples)} samples)")  # fmt: skip
        finally:
            await services.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    asyncio.run(main(args.images, args.size))
