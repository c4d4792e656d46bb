"""Signed, expiring dataset URLs: the AIR-compatible shape and GET /datasets/… over a socket."""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from bot.config import Settings, ensure_secret_key
from bot.metrics import BotMetrics
from bot.web.server import WebServer
from bot.web.signing import (
    SOURCE_URL_PATTERN,
    DatasetUrlSigner,
    SignatureCheck,
    check_dataset_signature,
    dataset_signing_key,
    public_url_problems,
    sign_dataset_url,
    verify,
)
from tests.shared_specs import require_spec
from tests.web.conftest import PUBLIC_URL, make_settings

DIGEST = "ab" * 32
ZIP_BYTES = b"PK\x03\x04" + bytes(range(256)) * 64
AIR_LIKE = re.compile(r"^[A-Za-z0-9_\-/.:]+$")


@pytest.fixture
def stored_zip(settings: Settings) -> Path:
    path = settings.data_dir / "datasets" / f"{DIGEST}.zip"
    path.parent.mkdir(parents=True)
    path.write_bytes(ZIP_BYTES)
    return path


def key_of(settings: Settings) -> bytes:
    return dataset_signing_key(ensure_secret_key(settings).get_secret_value())


def local(server: WebServer, signed: str) -> str:
    """The signed public URL, fetched from the local server (a reverse proxy does this in production)."""
    return server.base_url + urlsplit(signed).path


async def test_valid_url_streams_the_file(
    server: WebServer, settings: Settings, stored_zip: Path, client: aiohttp.ClientSession, metrics: BotMetrics
) -> None:
    signed = DatasetUrlSigner.from_settings(settings)
    assert signed is not None
    async with client.get(local(server, signed.url_for(DIGEST))) as response:
        assert response.status == 200
        assert response.content_type == "application/zip"
        assert await response.read() == ZIP_BYTES
    assert metrics.dataset_downloads.value(outcome="served") == 1


@pytest.mark.parametrize("tamper", ["signature", "digest", "expiry"])
async def test_tampered_urls_are_403(
    server: WebServer, settings: Settings, stored_zip: Path, client: aiohttp.ClientSession, tamper: str
) -> None:
    other = "cd" * 32
    (stored_zip.parent / f"{other}.zip").write_bytes(b"someone else's dataset")
    expires = int(time.time()) + 3600
    digest, exp, signature = urlsplit(sign_dataset_url(PUBLIC_URL, DIGEST, expires, key_of(settings))).path.split("/")[
        2:5
    ]
    if tamper == "signature":
        signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    elif tamper == "digest":
        digest = other
    else:
        exp = str(expires + 86400)
    async with client.get(f"{server.base_url}/datasets/{digest}/{exp}/{signature}/dataset.zip") as response:
        assert response.status == 403
        assert (await response.read()) not in (ZIP_BYTES, b"someone else's dataset")


async def test_expired_url_is_410_and_missing_file_404(
    server: WebServer, settings: Settings, stored_zip: Path, client: aiohttp.ClientSession
) -> None:
    expired = sign_dataset_url(PUBLIC_URL, DIGEST, int(time.time()) - 1, key_of(settings))
    async with client.get(local(server, expired)) as response:
        assert response.status == 410
    gone = sign_dataset_url(PUBLIC_URL, "ef" * 32, int(time.time()) + 60, key_of(settings))
    async with client.get(local(server, gone)) as response:
        assert response.status == 404


def test_a_url_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    mine = make_settings(tmp_path / "a")
    theirs = make_settings(tmp_path / "b", secret_key="another-secret-key-0123456789")
    url = sign_dataset_url(PUBLIC_URL, DIGEST, 2_000_000_000, key_of(theirs))
    digest, expires, signature = urlsplit(url).path.split("/")[2:5]
    assert verify(digest, expires, signature, key_of(theirs), now=time.time())
    assert not verify(digest, expires, signature, key_of(mine), now=time.time())
    assert check_dataset_signature(digest, expires, signature, key_of(theirs), now=2_000_000_001) is (
        SignatureCheck.EXPIRED
    )
    assert check_dataset_signature("../x", expires, signature, key_of(theirs), now=0) is SignatureCheck.BAD
    # The derived key is neither the secret key itself nor shared with other uses of it.
    raw = ensure_secret_key(mine).get_secret_value().encode()
    assert key_of(mine) != raw and len(key_of(mine)) == 32


@pytest.mark.parametrize("public_url", [PUBLIC_URL, "https://example.org/lora-bot/", "https://a-b.example.co.uk/x_y.z"])
def test_signed_url_matches_the_orchestrator_pattern(public_url: str) -> None:
    url = sign_dataset_url(public_url, DIGEST, 1_900_000_000, b"k" * 32)
    parts = urlsplit(url)
    assert AIR_LIKE.fullmatch(url), url
    assert SOURCE_URL_PATTERN.fullmatch(url), url
    assert parts.port is None and parts.query == "" and url.count(":") == 1
    assert parts.path.endswith(f"/datasets/{DIGEST}/1900000000/{parts.path.split('/')[-2]}/dataset.zip")


def test_embedded_pattern_is_the_one_in_the_openapi_document() -> None:
    spec = json.loads(require_spec("civitai-orchestration-v2-consumers.json").read_text(encoding="utf-8"))
    zip_schema = spec["components"]["schemas"]["ZipTrainingData"]["allOf"][1]
    documented = zip_schema["properties"]["sourceUrl"]["pattern"]
    assert SOURCE_URL_PATTERN.pattern == documented.replace("(?<", "(?P<")


def test_no_signer_without_public_url(tmp_path: Path) -> None:
    assert DatasetUrlSigner.from_settings(make_settings(tmp_path, public_url=None)) is None


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://bot.example.com", []),
        ("https://bot.example.com/lora/", []),
        ("http://bot.example.com", ["https://"]),
        ("https://bot.example.com:8443", ["port"]),
        ("https://bot.example.com:443", ["port"]),
        ("https://bot.example.com/?token=1", ["query"]),
        ("https://bot.example.com/#frag", ["query"]),
        ("https://bot.example.com/~me", ["characters"]),
        ("https://bot.example.com/a%20b", ["characters"]),
        ("https://user:pw@bot.example.com", ["credentials"]),
        ("bot.example.com", ["https://", "host"]),
        ("http://[::1", ["not a valid URL"]),
    ],
)
def test_public_url_problems(public_url: str, expected: list[str]) -> None:
    problems = public_url_problems(public_url)
    assert len(problems) >= len(expected), problems
    for word in expected:
        assert any(word in problem for problem in problems), (word, problems)
    if not expected:
        assert problems == []


async def test_an_image_link_serves_that_image_only(
    server: WebServer, settings: Settings, client: aiohttp.ClientSession
) -> None:
    """Captioning's hosted ``mediaUrl``: one image of a stored dataset; its signature opens
    neither another image nor the zip, and it expires like a dataset link."""
    path = settings.data_dir / "datasets" / f"{DIGEST}.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.jpg", b"first image")
        archive.writestr("a.txt", b"a caption")
        archive.writestr("b.png", b"second image")
    signer = DatasetUrlSigner.from_settings(settings)
    assert signer is not None
    url = signer.image_url(DIGEST, 1, ".png")
    assert url.startswith(f"{PUBLIC_URL}/datasets/{DIGEST}/") and url.endswith("/images/1.png")
    async with client.get(local(server, url)) as response:
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == b"second image"
    for other in (url.replace("/images/1.png", "/images/0.png"), url.replace("/images/1.png", "/dataset.zip")):
        async with client.get(local(server, other)) as response:
            assert response.status == 403
    async with client.get(local(server, signer.image_url(DIGEST, 2, ".jpg"))) as response:
        assert response.status == 404  # past the last image
    async with client.get(local(server, signer.image_url(DIGEST, 0, ".jpg", now=time.time() - 10**6))) as response:
        assert response.status == 410
