"""SLOW-ISH (about 2 s): a ~200 MiB zip. The defer still comes within Discord's 3 seconds,
because nothing is downloaded before it."""

from __future__ import annotations

import io
import zipfile

from bot.app import TrainerBot
from tests.dataset_helpers import image_bytes
from tests.stage import Attachment, Stage, StageMember
from tests.train.helpers import is_confirmation

BIG_ENTRY = 200 * 1024 * 1024


def big_zip() -> bytes:
    """Three images and one 200 MiB stored stray file (zeros: quick to make, nothing to inflate)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for n in range(3):
            archive.writestr(f"img{n}.jpg", image_bytes(size=(160, 128)))
        archive.writestr("raw/footage.bin", bytes(BIG_ENTRY))
    return out.getvalue()


async def test_a_200_mib_zip_is_deferred_at_once_then_checked(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("train flux1", dataset=Attachment("big.zip", big_zip()))
    # The stage itself fails the test when no initial response comes within Discord's 3 s.
    assert await ix.response() == 5  # deferred (thinking)
    # Streaming and checking 200 MiB takes a while on a loaded two-core machine.
    shown = await alice.wait_ephemeral(is_confirmation, timeout=60)
    assert "3 images" in shown.text and "footage.bin" in shown.text  # the stray file was skipped
    # On the way, the member read where it stood.
    lines = [r.body.get("content") for r in stage.requests if r.route.endswith("@original") and r.body]
    assert "⬇️ Downloading the dataset…" in lines and "🔍 Checking 3 images…" in lines and "💰 Pricing…" in lines
