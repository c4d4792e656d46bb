"""A cap on simultaneous connections per peer address, in front of aiohttp's protocol.

aiohttp bounds a request's head (size, and time through its keep-alive timer) but not how many
connections one address holds, so a single slow client could take every file descriptor. Its
low-level ``Server`` is a protocol factory (``loop.create_server(runner.server, …)`` is its
documented use); ``PeerLimit.factory`` wraps it so a connection over the cap is answered 503 and
closed before aiohttp ever sees it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

ProtocolFactory = Callable[[], asyncio.Protocol]


def peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class PeerLimit:
    def __init__(self, per_peer: int, *, on_refused: Callable[[], None] = lambda: None) -> None:
        self.per_peer = per_peer
        self.on_refused = on_refused
        self.open: Counter[str] = Counter()

    def admit(self, peer: str) -> bool:
        if self.open[peer] >= self.per_peer:
            return False
        self.open[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]  # the counter must not grow with every address ever seen

    def factory(self, inner: ProtocolFactory) -> ProtocolFactory:
        return lambda: _CountedConnection(inner(), self)


class _CountedConnection(asyncio.Protocol):
    """Delegates every protocol call to aiohttp's handler once the peer is admitted."""

    def __init__(self, inner: asyncio.Protocol, limit: PeerLimit) -> None:
        self._inner = inner
        self._limit = limit
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_host(transport)
        if not self._limit.admit(peer):
            self._limit.on_refused()
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_REFUSED)
            transport.close()
            return
        self._peer = peer
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is None:
            return
        self._limit.release(self._peer)
        self._peer = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._peer is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._peer is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
