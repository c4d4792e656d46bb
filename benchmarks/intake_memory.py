"""Peak memory of dataset intakes under the process-wide decode budget (issue 13, defect 1).

    PYTHONPATH=. python benchmarks/intake_memory.py [--repeat 3] [--workdir DIR] [--tiny]

Builds (cached in ``--workdir``, by default a temporary directory) a zip of four 7990×7990
progressive JPEGs (64 MP each, grainy so they do not compress to nothing) and a normal dataset
of 40 phone-style 4000×3000 JPEGs, then runs each case in a fresh process, through the real
intake path (``intake_from_stream``: the zip streamed to disk, checked, normalised, kept):

  (a) one intake of the 64 MP zip           target: peak RSS ≤ 300 MiB
  (b) three intakes of it at once           target: peak RSS ≤ 400 MiB
  (c) one intake of the 40-photo dataset    target: no slower than without the budget

each with the budget at its default and, as the baseline, disabled (``dataset_decode_pixels``
0), and prints every process's peak RSS (VmHWM: the whole process, its own high-water mark)
and wall time, with (c)'s time as a ratio of the baseline's. ``--tiny`` runs the same cases on
small images (a configuration check, so the script cannot rot; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dataset_bench import peak_rss_kib, photo, scratch

MIB = 1024 * 1024
TARGET_A_MIB = 300
TARGET_B_MIB = 400


@dataclass(frozen=True)
class Scale:
    huge: tuple[int, int]  # the 64 MP images of (a) and (b)
    photo: tuple[int, int]  # the phone photos of (c)
    photos: int
    budget: int | None  # None: the setting's default
    max_pixels: int | None


FULL = Scale(huge=(7990, 7990), photo=(4000, 3000), photos=40, budget=None, max_pixels=None)
TINY = Scale(huge=(300, 300), photo=(320, 240), photos=6, budget=100_000, max_pixels=None)


def grainy(seed: int, size: tuple[int, int]) -> Image.Image:
    """Smooth colour fields with film grain (made at 1/4 size, for speed): a 64 MP JPEG of
    about 9 MB, like a high-ISO photo, not a flat fill that compresses to nothing."""
    rnd = random.Random(seed)
    base = Image.frombytes("RGB", (24, 24), rnd.randbytes(24 * 24 * 3)).resize(size, Image.Resampling.BILINEAR)
    grain_size = (max(1, size[0] // 4), max(1, size[1] // 4))
    grain = Image.effect_noise(grain_size, 40).resize(size, Image.Resampling.NEAREST).convert("RGB")
    return Image.blend(base, grain, 0.15)


# Distinct pictures from one generated image: generating a 64 MP picture costs far more than
# saving it, and every variant is a different JPEG to decode.
VARIANTS = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180)


def build(workdir: Path, scale: Scale) -> dict[str, Path]:
    huge = workdir / f"huge_{scale.huge[0]}.zip"
    if not huge.exists():
        picture = grainy(1, scale.huge)
        with zipfile.ZipFile(huge.with_suffix(".part"), "w", zipfile.ZIP_STORED) as archive:
            for index, variant in enumerate(VARIANTS):
                image = picture.transpose(variant) if variant is not None else picture
                archive.writestr(f"huge_{index}.jpg", _jpeg(image, quality=85, progressive=True))
        huge.with_suffix(".part").rename(huge)
    photos = workdir / f"photos_{scale.photo[0]}_{scale.photos}.zip"
    if not photos.exists():
        with zipfile.ZipFile(photos.with_suffix(".part"), "w", zipfile.ZIP_STORED) as archive:
            for index in range(scale.photos):
                if index % len(VARIANTS) == 0:
                    picture = photo(index, scale.photo)
                variant = VARIANTS[index % len(VARIANTS)]
                image = picture.transpose(variant) if variant is not None else picture
                archive.writestr(f"IMG_{index:04}.jpg", _jpeg(image, quality=95))
                archive.writestr(f"IMG_{index:04}.txt", f"a photo of sks, number {index}")
        photos.with_suffix(".part").rename(photos)
    return {"huge": huge, "photos": photos}


def _jpeg(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def child(path: Path, copies: int, budget: int | None, data_dir: Path) -> None:
    """Run ``copies`` intakes of ``path`` at once; print JSON figures."""
    from bot.config import Settings
    from bot.dataset import intake_from_stream

    overrides: dict[str, object] = {"data_dir": data_dir}
    if budget is not None:
        overrides["dataset_decode_pixels"] = budget
    settings = Settings(**overrides)  # type: ignore[arg-type]

    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            while chunk := file.read(MIB):
                yield chunk

    async def run() -> list[bool]:
        results = await asyncio.gather(*(intake_from_stream(chunks(), settings) for _ in range(copies)))
        return [result.accepted for result in results]

    started, cpu = time.perf_counter(), cpu_seconds()
    accepted = asyncio.run(run())
    figures = {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "peak_kib": peak_rss_kib()}
    print(json.dumps(figures | {"accepted": accepted}))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Figures:
    wall: float  # seconds, the best of the rounds
    cpu: float  # seconds of CPU (all threads), the best of the rounds
    peak_mib: float  # the highest of the rounds

    def add(self, other: Figures) -> None:
        self.wall, self.cpu = min(self.wall, other.wall), min(self.cpu, other.cpu)
        self.peak_mib = max(self.peak_mib, other.peak_mib)


def measure(path: Path, copies: int, budget: int | None, workdir: Path) -> Figures:
    """One fresh process: its peak RSS is this case's alone."""
    data_dir = workdir / "data"
    command = [sys.executable, __file__, "--child", str(path), str(copies), "--data-dir", str(data_dir)]
    command += ["--budget", str(budget)] if budget is not None else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    shutil.rmtree(data_dir, ignore_errors=True)  # each run starts with an empty store
    figures = json.loads(done.stdout)
    if not all(figures["accepted"]):
        raise SystemExit(f"an intake was refused: {figures}")
    return Figures(figures["wall"], figures["cpu"], figures["peak_kib"] / 1024)


def compare(path: Path, copies: int, budget: int | None, workdir: Path, rounds: int) -> tuple[Figures, Figures]:
    """With the budget and without, alternately (a shared machine's load then hits both alike)."""
    ours, baseline = measure(path, copies, budget, workdir), measure(path, copies, 0, workdir)
    for _ in range(rounds - 1):
        ours.add(measure(path, copies, budget, workdir))
        baseline.add(measure(path, copies, 0, workdir))
    return ours, baseline


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of (c), each in fresh processes (best counts)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--tiny", action="store_true", help="small images: check the script runs, nothing more")
    parser.add_argument("--child", nargs=2, metavar=("ZIP", "COPIES"), help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), args.budget, args.data_dir)
        return

    scale = TINY if args.tiny else FULL
    with scratch(args.workdir, "intake-memory-") as workdir:
        started = time.perf_counter()
        files = build(workdir, scale)
        print(f"fixtures in {workdir} ({time.perf_counter() - started:.1f} s to build)")
        budget_label = f"{scale.budget:,} px" if scale.budget else "default"
        cases = (
            ("(a) one intake, 4 × 64 MP progressive", files["huge"], 1, 1, TARGET_A_MIB),
            ("(b) three intakes at once", files["huge"], 3, 1, TARGET_B_MIB),
            (f"(c) one intake, {scale.photos} photos", files["photos"], 1, args.repeat, None),
        )
        for label, path, copies, repeat, target in cases:
            print(f"\n{label}: {path.name}, {path.stat().st_size / MIB:.1f} MiB")
            ours, baseline = compare(path, copies, scale.budget, workdir, repeat)
            met = f"   target ≤ {target} MiB: {verdict(ours.peak_mib <= target)}" if target else ""
            for shown, run, note in ((budget_label, ours, met), ("disabled", baseline, "")):
                figures = f"{run.wall:7.2f} s (CPU {run.cpu:6.2f} s)   peak RSS {run.peak_mib:7.1f} MiB"
                print(f"  budget {shown:>12}  {figures}{note}")
            if target is None:
                wall, cpu = ours.wall / baseline.wall, ours.cpu / baseline.cpu
                # On a loaded machine wall time follows the neighbours; CPU time, the work done.
                print(
                    f"  with the budget = {wall:.2f}× the time without ({verdict(wall <= 1.0)}), "
                    f"CPU {cpu:.2f}× ({verdict(cpu <= 1.0)})   target ≤ 1.00×"
                )


if __name__ == "__main__":
    main()
