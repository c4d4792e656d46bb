"""Getting the zip: streamed attachments with a size cap, and https URLs that can only reach
public addresses. Refusals are checked without connecting anywhere; the happy path runs against
a local aiohttp server on 127.0.0.1, allowed only through ``dataset_allow_loopback``."""

from __future__ import annotations

import asyncio
import socket
import zipfile
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.dataset import DatasetError, intake_from_stream, intake_from_url
from bot.dataset.addresses import address_problem
from bot.dataset.sources import http_chunks
from tests.dataset_helpers import RecordedProgress, image_bytes, make_zip, settings_for, zip_names


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any connection or DNS lookup that would leave 127.0.0.0/8."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        if isinstance(address, tuple) and not ip_address(address[0]).is_loopback:
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "127.0.0.1", "localhost", "::1", b"127.0.0.1"):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts


class FakeResolver(AbstractResolver):
    """DNS answers decided by the test; records what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.answers.get(host, [])
        ]

    async def close(self) -> None:
        return None


DATASET = {"a.jpg": image_bytes(), "a.txt": b"sks", "b.png": image_bytes("PNG")}


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/data.zip", "https://"),
        ("ftp://example.com/data.zip", "https://"),
        ("https:///data.zip", "no host"),
        ("https://10.0.0.5/data.zip", "private"),
        ("https://192.168.1.10/data.zip", "private"),
        ("https://172.16.0.1/data.zip", "private"),
        ("https://127.0.0.1/data.zip", "loopback"),
        ("https://[::1]/data.zip", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://169.254.1.1/data.zip", "link-local"),
        ("https://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("https://[fc00::1]/data.zip", "private"),
        ("https://[fe80::1]/data.zip", "link-local"),
        ("https://[::ffff:10.0.0.1]/data.zip", "private"),
        ("https://0.0.0.0/data.zip", "unspecified"),
        ("https://224.0.0.1/data.zip", "multicast"),
        ("https://100.100.100.200/latest", "cloud metadata"),
        ("https://168.63.129.16/machine", "cloud metadata"),
        ("https://240.0.0.1/data.zip", "reserved"),
        ("https://100.64.0.1/data.zip", "not a public"),
    ],
)
async def test_refused_urls_never_connect(tmp_path: Path, url: str, words: str, loopback_only: list[Any]) -> None:
    resolver = FakeResolver({})
    with pytest.raises(DatasetError) as caught:
        await intake_from_url(url, settings_for(tmp_path), resolver=resolver)
    assert words in caught.value.user_message
    assert resolver.asked == [] and loopback_only == []


def test_metadata_is_refused_even_when_loopback_is_allowed() -> None:
    assert address_problem(ip_address("169.254.169.254"), allow_loopback=True) == "a cloud metadata address"
    assert address_problem(ip_address("fd00:ec2::254"), allow_loopback=True) == "a cloud metadata address"
    assert address_problem(ip_address("64:ff9b::a00:1"), allow_loopback=False) == "a private network address"
    assert address_problem(ip_address("2002:7f00:1::"), allow_loopback=False) == "a loopback address"
    assert address_problem(ip_address("93.184.216.34"), allow_loopback=False) is None
    assert address_problem(ip_address("2606:4700::1111"), allow_loopback=False) is None


@pytest.mark.parametrize(
    "answers", [["10.1.2.3"], ["93.184.216.34", "192.168.0.7"], ["fd12:3456::1"], ["127.0.0.1"]]
)
async def test_names_resolving_to_forbidden_addresses_are_refused_before_connecting(
    tmp_path: Path, answers: list[str], loopback_only: list[Any]
) -> None:
    resolver = FakeResolver({"datasets.example": answers})
    with pytest.raises(DatasetError, match=r"datasets\.example"):
        await intake_from_url("https://datasets.example/x.zip", settings_for(tmp_path), resolver=resolver)
    assert resolver.asked == ["datasets.example"]
    assert loopback_only == []


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    """A local server: /start redirects twice to the zip, and a few broken routes."""
    zip_bytes = make_zip(tmp_path / "served.zip", DATASET).read_bytes()

    redirects = {
        "/start": "/middle",
        "/middle": "/files/dataset.zip",
        "/to-private": "https://10.0.0.1/data.zip",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-http": "http://example.com/data.zip",
        "/loop": "/loop",
    }

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(redirects[request.path])

    async def dataset(_: web.Request) -> web.Response:
        return web.Response(body=zip_bytes, content_type="application/zip")

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html>log in first</html>", content_type="text/html")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=bytes(200_000), content_type="application/zip")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: only the streamed count can stop it
        await response.prepare(request)
        for _ in range(64):
            await response.write(bytes(64 * 1024))
        return response

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=zip_bytes)

    app = web.Application()
    for path in redirects:
        app.router.add_get(path, redirect)
    for path, handler in (("/files/dataset.zip", dataset), ("/page", page), ("/big", big), ("/endless", endless),
                          ("/slow", slow)):  # fmt: skip
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_loopback_happy_path_with_redirects(tmp_path: Path, server: str, loopback_only: list[Any]) -> None:
    settings = settings_for(tmp_path, dataset_allow_loopback=True)
    result = await intake_from_url(f"{server}/start?token=secret", settings, trigger_word="sks")
    assert result.accepted, result.refusals
    assert result.image_count == 2 and result.captioned == 1
    assert result.source == f"{server}/start"  # the query string (maybe a token) is not kept
    assert result.zip_path is not None and result.zip_path.parent == settings.data_dir / "datasets"
    assert zip_names(result.zip_path) == ["a.jpg", "a.txt", "b.png"]
    assert list((settings.data_dir / "tmp").iterdir()) == []
    assert loopback_only and all(ip_address(a[0]).is_loopback for a in loopback_only)  # the guard saw them


async def test_loopback_is_refused_without_the_setting(tmp_path: Path, server: str, loopback_only: list[Any]) -> None:
    with pytest.raises(DatasetError, match="https://"):
        await intake_from_url(f"{server}/start", settings_for(tmp_path))
    with pytest.raises(DatasetError, match="loopback"):
        await intake_from_url(server.replace("http:", "https:") + "/start", settings_for(tmp_path))
    assert loopback_only == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/to-private", "private"),
        ("/to-metadata", "https://"),
        ("/to-http", "https://"),
        ("/loop", "redirects more than 5 times"),
        ("/page", "web page"),
        ("/big", "larger than"),
        ("/endless", "larger than"),
        ("/missing", "HTTP 404"),
    ],
)
async def test_bad_downloads_are_refused(
    tmp_path: Path, server: str, path: str, words: str, loopback_only: list[Any]
) -> None:
    settings = settings_for(tmp_path, dataset_allow_loopback=True, max_zip_bytes=100_000)
    with pytest.raises(DatasetError, match=words):
        await intake_from_url(server + path, settings)
    assert all(ip_address(a[0]).is_loopback for a in loopback_only)
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_redirect_to_metadata_over_https_is_refused(tmp_path: Path) -> None:
    """A redirect target is checked like the first URL (here straight from the policy)."""
    from yarl import URL

    from bot.dataset.addresses import AddressPolicy

    with pytest.raises(DatasetError, match="cloud metadata"):
        AddressPolicy(allow_loopback=True).check_url(URL("https://127.0.0.1/a").join(URL("https://169.254.169.254/")))


async def test_download_time_is_capped(tmp_path: Path, server: str) -> None:
    settings = settings_for(tmp_path, dataset_allow_loopback=True, url_timeout_seconds=0.3)
    with pytest.raises(DatasetError, match=r"longer than 0\.3 s"):
        await intake_from_url(f"{server}/slow", settings)


async def chunks_of(data: bytes, size: int, consumed: list[int]) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        consumed.append(at)
        yield data[at : at + size]


async def test_stream_intake_keeps_the_normalised_zip(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    data = make_zip(tmp_path / "in.zip", DATASET).read_bytes()
    result = await intake_from_stream(chunks_of(data, 1000, []), settings, source="photos.zip")
    assert result.accepted and result.source == "photos.zip"
    assert result.zip_path is not None and result.zip_path.is_file()
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_stream_stops_as_soon_as_the_cap_is_passed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_zip_bytes=2500)
    consumed: list[int] = []
    with pytest.raises(DatasetError, match="larger than"):
        await intake_from_stream(chunks_of(bytes(100_000), 1000, consumed), settings)
    assert len(consumed) == 3  # the third chunk passes 2500 bytes; nothing after it is read
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_declared_size_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    consumed: list[int] = []
    with pytest.raises(DatasetError, match="larger than"):
        await intake_from_stream(
            chunks_of(b"x" * 10, 5, consumed), settings_for(tmp_path, max_zip_bytes=5), declared_size=10
        )
    assert consumed == []


async def test_stream_intake_reports_progress_then_the_image_count(tmp_path: Path) -> None:
    files = {f"img{n}.jpg": image_bytes() for n in range(3)} | {"__MACOSX/._img0.jpg": b"junk", "img0.txt": b"x"}
    files["notes.bin"] = bytes(3 * 1024 * 1024)  # a stray file, stored: the download spans a few flushes
    data = make_zip(tmp_path / "in.zip", files, compression=zipfile.ZIP_STORED).read_bytes()
    progress = RecordedProgress()
    await intake_from_stream(
        chunks_of(data, 256 * 1024, []), settings_for(tmp_path), declared_size=len(data), progress=progress
    )
    downloads = [e for e in progress.events if e[0] == "downloading"]
    assert downloads and all(total == len(data) for _, _, total in downloads)
    assert [received for _, received, _ in downloads] == sorted(received for _, received, _ in downloads)
    assert progress.events[-1] == ("checking", 3, None)  # junk and captions are not counted


async def test_url_intake_reports_progress_without_a_declared_size(
    tmp_path: Path, server: str, loopback_only: list[Any]
) -> None:
    progress = RecordedProgress()
    settings = settings_for(tmp_path, dataset_allow_loopback=True, max_zip_bytes=10_000_000)
    result = await intake_from_url(f"{server}/endless", settings, progress=progress)
    assert not result.accepted  # zeros are not a zip: the check says so, the count is unknown
    downloads = [(received, total) for kind, received, total in progress.events if kind == "downloading"]
    # Chunks arrive as the network delivers them: a report after each MiB flushed, no total known.
    assert downloads and all(received >= 1024 * 1024 and total is None for received, total in downloads)
    assert progress.events[-1] == ("checking", None, None)


async def test_http_chunks_streams_a_body_and_names_a_failed_download(
    tmp_path: Path, server: str, loopback_only: list[Any]
) -> None:
    received = b"".join([chunk async for chunk in http_chunks(f"{server}/files/dataset.zip", time_limit=5)])
    assert received.startswith(b"PK")
    with pytest.raises(DatasetError, match="HTTP 404"):
        async for _ in http_chunks(f"{server}/missing", time_limit=5):
            pass
    with pytest.raises(DatasetError, match=r"took longer than 0\.2 s"):
        async for _ in http_chunks(f"{server}/slow", time_limit=0.2):
            pass
