"""Regenerate the pictures of the README from the project's own code.

    PYTHONPATH=. python docs/make_pictures.py

1. A dataset of generated landscapes (seeded, so the same every time) is checked with the real
   command, ``python -m bot dataset check dataset.zip --sheet docs/contact-sheet.png``.
2. The same images train a LoRA on the built-in orchestrator simulator through the real client
   (blobs upload, submit, epochs), and the samples of every epoch go through the comparison grid
   the bot posts when a run succeeds: ``docs/epoch-grid.png``.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.civitai import models as m  # noqa: E402  (after the path is set, to run without installing)
from bot.civitai.client import OrchestratorClient, RetryPolicy  # noqa: E402
from bot.civitai.simulator import Simulator  # noqa: E402
from bot.civitai.training import TrainingOptions, training_workflow  # noqa: E402
from bot.render.grid import comparison_grid  # noqa: E402

DOCS = ROOT / "docs"
SEED = 20240917
IMAGES = 12
EPOCHS = 4
PROMPTS = "lndscp mountains at dawn|lndscp a lake at night|lndscp a lighthouse in a storm"
TOKEN = "make-pictures-token"


def landscape(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Layered mountains under a gradient sky with a sun: a 'style' a LoRA could learn."""
    width, height = size
    sky_top = (rng.randrange(20, 90), rng.randrange(30, 110), rng.randrange(90, 180))
    sky_bottom = (rng.randrange(200, 255), rng.randrange(120, 200), rng.randrange(60, 150))
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, sky_bottom), Image.new("RGB", size, sky_top), gradient)
    draw = ImageDraw.Draw(image)
    sun_x, sun_y = rng.randrange(width // 5, 4 * width // 5), rng.randrange(height // 6, height // 2)
    sun_r = height // 10
    draw.ellipse((sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r), fill=(255, 236, 180))
    layers = rng.randrange(3, 6)
    for layer in range(layers):
        depth = (layer + 1) / layers
        shade = tuple(int(c * (1 - 0.75 * depth)) for c in sky_top)
        base = int(height * (0.45 + 0.12 * layer))
        points = [(0, height)]
        x = 0
        while x <= width:
            points.append((x, base - rng.randrange(0, int(height * 0.22 * (1.2 - depth)) + 1)))
            x += rng.randrange(width // 12, width // 5)
        points += [(width, base), (width, height)]
        draw.polygon(points, fill=shade)
    return image.filter(ImageFilter.SMOOTH)


def make_dataset(folder: Path) -> tuple[Path, list[bytes]]:
    """A zip as a member would upload it: images with captions, a few without, macOS junk."""
    rng = random.Random(SEED)
    sizes = [(1024, 768), (768, 1024), (1024, 1024), (1280, 720), (640, 480)]
    images: list[bytes] = []
    path = folder / "lndscp-dataset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(IMAGES):
            picture = landscape(rng, sizes[n % len(sizes)])
            data = io.BytesIO()
            picture.save(data, "JPEG", quality=88)
            images.append(data.getvalue())
            archive.writestr(f"lndscp/{n:02d}.jpg", data.getvalue())
            if n % 4 != 3:  # a few uncaptioned images, as in real datasets
                archive.writestr(f"lndscp/{n:02d}.txt", f"lndscp, layered mountains, sunset sky, picture {n}")
        archive.writestr("__MACOSX/lndscp/._00.jpg", b"\0" * 64)
        archive.writestr("lndscp/.DS_Store", b"\0" * 64)
    return path, images


def contact_sheet(dataset: Path, work: Path) -> None:
    """The real command an operator runs, in a scratch data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CIVITAI_"))}
    env |= {"PYTHONPATH": str(ROOT), "DATA_DIR": str(work / "data")}
    command = [sys.executable, "-m", "bot", "dataset", "check", str(dataset), "--trigger-word", "lndscp"]
    command += ["--sheet", str(DOCS / "contact-sheet.png")]
    report = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, check=False)
    print(report.stdout)
    if report.returncode != 0:
        raise SystemExit(f"the dataset check refused the generated dataset:\n{report.stderr}")


async def epoch_grid(images: list[bytes]) -> None:
    """Train on the simulator with the bot's client, then render every epoch's samples."""
    sim = Simulator(speed=0)  # time moves only when told: fast and repeatable
    sim.add_account(TOKEN, 100_000)
    base_url = await sim.start("127.0.0.1", 0)
    try:
        async with OrchestratorClient(base_url, retry=RetryPolicy(attempts=1)) as client:
            session = client.session(TOKEN)
            items = []
            for n, data in enumerate(images):
                blob = await session.upload_blob(data, filename=f"{n:02d}.jpg", content_type="image/jpeg")
                items.append(m.BlobTrainingItem(air=blob.air, caption="lndscp, layered mountains"))
            options = TrainingOptions.from_user(steps=800, epochs=EPOCHS, sample_prompts=PROMPTS, trigger_word="lndscp")
            training_input = options.to_training_input(m.BlobsTrainingData(items=items))
            template = training_workflow(training_input, external_id="docs")
            workflow = await session.submit(template)
            while not workflow.terminal:
                await sim.advance(60)
                workflow = await session.get(workflow.id)
            if workflow.status != "succeeded":
                raise SystemExit(f"the simulated run ended {workflow.status}")
            samples = {
                epoch.epoch_number: [await session.download(sample.url) for sample in epoch.samples]
                for epoch in workflow.available_epochs()
            }
    finally:
        await sim.stop()
    grid = comparison_grid(samples, options.sample_prompts, cell=256)
    (DOCS / "epoch-grid.png").write_bytes(grid)


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        dataset, images = make_dataset(work)
        contact_sheet(dataset, work)
        asyncio.run(epoch_grid(images))
    print(f"wrote {DOCS / 'contact-sheet.png'} and {DOCS / 'epoch-grid.png'}")


if __name__ == "__main__":
    main()
