"""Dataset check speed and memory against plain baselines on the same files.

    PYTHONPATH=. python benchmarks/dataset_bench.py [--repeat 3] [--workdir DIR]

Builds (a) 100 photo-like 1024×1024 JPEGs in a deflated zip and (b) a zip of about 200 MiB of
4000×3000 phone-style JPEGs (which the check downscales to 2048 px), then times, each in a
fresh process so memory is measured alone:

  check  our full check and normalisation (``check_zip``: verify, convert, write the
         normalised zip, hash it, render the contact sheet)
  crc    ``zipfile`` reading every entry through (inflate + CRC check), the floor for any check
  naive  ``Image.open().load()`` of every image, a full decode (the obvious way to verify)

and prints the best time of ``--repeat`` runs, our time as a ratio of each baseline, and the
peak RSS of each process (``ru_maxrss``). It also checks that a truncated JPEG in (a) is still
refused, since a faster check that missed it would be worthless.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

MODES = ("check", "crc", "naive")


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """Smooth shapes plus sensor-like noise: compresses like a photograph, not like a flat fill."""
    rnd = random.Random(seed)
    base = Image.frombytes("RGB", (24, 18), rnd.randbytes(24 * 18 * 3)).resize(size, Image.Resampling.BICUBIC)
    noise = Image.effect_noise(size, 24).convert("RGB")
    return Image.blend(base, noise, 0.12)


def build(workdir: Path) -> dict[str, Path]:
    small = workdir / "a_100x1024.zip"
    if not small.exists():
        with zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as archive:
            for i in range(100):
                out = io.BytesIO()
                photo(i, (1024, 1024)).save(out, "JPEG", quality=92)
                archive.writestr(f"photos/img_{i:03}.jpg", out.getvalue())
                archive.writestr(f"photos/img_{i:03}.txt", f"a photo of sks, number {i}")
    large = workdir / "b_200mib.zip"
    if not large.exists():
        with zipfile.ZipFile(large, "w", zipfile.ZIP_DEFLATED) as archive:
            i = 0
            while large.stat().st_size < 200 * 1024 * 1024:
                out = io.BytesIO()
                photo(1000 + i, (4000, 3000)).save(out, "JPEG", quality=95)
                archive.writestr(f"phone/IMG_{i:04}.jpg", out.getvalue())
                archive.fp.flush()  # type: ignore[union-attr]
                i += 1
    truncated = workdir / "a_truncated.zip"
    if not truncated.exists():
        with zipfile.ZipFile(small) as source, zipfile.ZipFile(truncated, "w", zipfile.ZIP_DEFLATED) as archive:
            for info in source.infolist():
                data = source.read(info)
                archive.writestr(info.filename, data[: len(data) - 2000] if info.filename.endswith("050.jpg") else data)
    return {"a": small, "b": large, "truncated": truncated}


@contextmanager
def scratch(workdir: Path | None, prefix: str) -> Iterator[Path]:
    """``workdir`` (kept, so its fixtures serve the next run too), or a temporary directory
    removed afterwards."""
    path = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        if not workdir:
            shutil.rmtree(path, ignore_errors=True)


def peak_rss_kib() -> int:
    """This process's peak RSS. Linux's ru_maxrss would include the parent's peak (a vfork'd
    child inherits it across exec), so read the high-water mark of our own memory map."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(mode: str, path: Path, repeat: int, data_dir: Path) -> None:
    """Run one mode ``repeat`` times in this process; print best time and peak RSS as JSON."""
    if mode == "check":
        from bot.config import Settings
        from bot.dataset import check_zip

        settings = Settings(data_dir=data_dir)

        def run() -> object:
            result = check_zip(path, settings)
            return {"accepted": result.accepted, "images": result.image_count, "refusals": len(result.refusals)}

    elif mode == "crc":

        def run() -> object:
            with zipfile.ZipFile(path) as archive:
                return sum(len(archive.read(info)) for info in archive.infolist())

    else:

        def run() -> object:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".jpg"):
                        with archive.open(info) as entry, Image.open(entry) as image:
                            image.load()
            return None

    baseline_rss = peak_rss_kib()
    times, outcome = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = run()
        times.append(time.perf_counter() - start)
    peak = peak_rss_kib()
    print(json.dumps({"best": min(times), "peak_kib": peak, "import_kib": baseline_rss, "outcome": outcome}))


def measure(mode: str, path: Path, repeat: int, data_dir: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", mode, str(path), "--repeat", str(repeat)]
    command += ["--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ZIP"), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.repeat, args.data_dir)
        return

    with scratch(args.workdir, "dataset-bench-") as workdir:
        started = time.perf_counter()
        files = build(workdir)
        print(f"fixtures in {workdir} ({time.perf_counter() - started:.1f} s to build)")
        data_dir = workdir / "data"
        for label in ("a", "b"):
            path = files[label]
            runs = {mode: measure(mode, path, args.repeat, data_dir) for mode in MODES}
            ours = float(runs["check"]["best"])  # type: ignore[arg-type]
            size = path.stat().st_size / 1024 / 1024
            with zipfile.ZipFile(path) as archive:
                entries = len(archive.infolist())
            print(f"\n({label}) {path.name}: {size:.1f} MiB, {entries} entries; check → {runs['check']['outcome']}")
            for mode in MODES:
                best = float(runs[mode]["best"])  # type: ignore[arg-type]
                peak = int(runs[mode]["peak_kib"]) / 1024  # type: ignore[call-overload]
                imports = int(runs[mode]["import_kib"]) / 1024  # type: ignore[call-overload]
                ratio = "" if mode == "check" else f"   ours = {ours / best:.2f}× this"
                print(f"  {mode:6} {best:7.3f} s   peak RSS {peak:6.1f} MiB (after imports {imports:5.1f}){ratio}")
        caught = measure("check", files["truncated"], 1, data_dir)
        print(f"\ntruncated JPEG (2000 bytes cut from one of (a)) → {caught['outcome']}")


if __name__ == "__main__":
    main()
