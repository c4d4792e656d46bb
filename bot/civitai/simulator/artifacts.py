"""What a simulated epoch produces: sample images (Pillow) and a small valid ``.safetensors`` file."""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import textwrap

from PIL import Image, ImageDraw, ImageFont, ImageOps

SAMPLE_SIZE = 384
# Layers of every simulated LoRA file (down, up and alpha tensors each); tiny on purpose.
LORA_LAYERS = ("double_blocks_0_img_attn_qkv", "single_blocks_0_linear1")
FEATURES = 32


def _seeded(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).digest())


def _background(rng: random.Random) -> Image.Image:
    """A generated two-colour gradient, used when no dataset image could be read."""
    top = tuple(rng.randrange(40, 216) for _ in range(3))
    bottom = tuple(rng.randrange(40, 216) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((SAMPLE_SIZE, SAMPLE_SIZE))
    return Image.composite(Image.new("RGB", gradient.size, bottom), Image.new("RGB", gradient.size, top), gradient)


def render_sample(source: bytes | None, prompt: str, epoch: int, epochs: int, seed: str) -> bytes:
    """A JPEG derived from a dataset image's thumbnail (JPEG bytes; tinted less as the epochs go
    on), labelled with the prompt and the epoch so a person can tell the samples apart."""
    rng = _seeded(seed, prompt)
    if source is not None:
        with Image.open(io.BytesIO(source)) as thumb:
            image = ImageOps.fit(thumb.convert("RGB"), (SAMPLE_SIZE, SAMPLE_SIZE))
        tint = Image.new("RGB", image.size, tuple(rng.randrange(0, 256) for _ in range(3)))
        image = Image.blend(image, tint, 0.6 * (1 - epoch / max(epochs, 1)) + 0.1)
    else:
        image = _background(rng)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    draw.rectangle((0, 0, SAMPLE_SIZE, 30), fill=(0, 0, 0))
    draw.text((8, 6), f"epoch {epoch}/{epochs} · SIMULATED", fill=(255, 255, 255), font=font)
    lines = textwrap.wrap(prompt, 34)[:4] or ["(empty prompt)"]
    box_top = SAMPLE_SIZE - 10 - 22 * len(lines)
    draw.rectangle((0, box_top - 6, SAMPLE_SIZE, SAMPLE_SIZE), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((8, box_top + 22 * i), line, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def build_safetensors(metadata: dict[str, str], rank: int, seed: str) -> bytes:
    """A file in the safetensors layout: 8-byte little-endian header length, JSON header, tensors."""
    rng = _seeded(seed)
    rank = max(1, min(rank, 8))
    tensors: list[tuple[str, list[int], list[float]]] = []
    for layer in LORA_LAYERS:
        name = f"lora_unet_{layer}"
        down = [rng.gauss(0, 0.02) for _ in range(rank * FEATURES)]
        tensors.append((f"{name}.lora_down.weight", [rank, FEATURES], down))
        tensors.append((f"{name}.lora_up.weight", [FEATURES, rank], [0.0] * (FEATURES * rank)))
        tensors.append((f"{name}.alpha", [], [float(rank)]))
    header: dict[str, object] = {"__metadata__": metadata}
    body = bytearray()
    for name, shape, values in tensors:
        start = len(body)
        body += struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [start, len(body)]}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format allows padding the header to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + bytes(body)
