"""The stage's gateway: the websocket a discord.py client keeps open to receive events.

HELLO → IDENTIFY → READY + GUILD_CREATE (or RESUME → replay + RESUMED), heartbeats answered,
dispatches numbered per session so a client that reconnects can RESUME without losing events.
Tests force reconnects with ``force_reconnect`` (op 7, or op 9 to make the client IDENTIFY again)
and ``drop`` (the connection just dies, as when a network link fails).

Shards: each IDENTIFY names its ``shard: [id, count]`` (absent: ``[0, 1]``); the stage keeps one
session per shard id and sends a server's events only to the session of its shard,
``(guild_id >> 22) % count`` (events without a server go to shard 0), as Discord does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.stage.server import Stage

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11
HEARTBEAT_INTERVAL_MS = 41_250
GUILDS_INTENT = 1 << 0
# Events a client only gets with the GUILDS intent (INTERACTION_CREATE needs none).
GUILDS_EVENTS = {"GUILD_CREATE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE"} | {
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
}
AUTHENTICATION_FAILED = 4004


@dataclass
class GatewaySession:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Gateway:
    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.sessions: dict[int, GatewaySession] = {}  # the bot's current session of each shard
        self.identify_count = 0
        self.resume_count = 0
        self.connections = 0
        self._sockets: set[web.WebSocketResponse] = set()

    # --- what tests read ---------------------------------------------------------------------
    @property
    def session(self) -> GatewaySession | None:
        """The session of shard 0 (the only one of a bot that is not sharded)."""
        return self.sessions.get(0)

    @property
    def connected(self) -> bool:
        """Whether a client is identified (or resumed) on an open connection."""
        return self.shard_connected(0)

    def shard_connected(self, shard_id: int) -> bool:
        session = self.sessions.get(shard_id)
        return session is not None and session.ws is not None and not session.ws.closed

    async def force_reconnect(self, *, resume: bool = True) -> None:
        """Ask the client to reconnect: op 7 (it RESUMEs) or op 9 false (it IDENTIFYs again)."""
        session = self._require_session()
        if resume:
            await self._send(session, {"op": RECONNECT, "d": None})
        else:
            self.sessions.pop(session.shard[0], None)  # the client must start a new session
            await self._send(session, {"op": INVALID_SESSION, "d": False})

    async def drop(self) -> None:
        """Cut the connection without a word (code 4000); the client reconnects and RESUMEs."""
        session = self._require_session()
        if session.ws is not None:
            await session.ws.close(code=4000, message=b"stage dropped the connection")

    # --- events ------------------------------------------------------------------------------
    def session_for(self, data: Any) -> GatewaySession | None:
        """The session of the shard an event's server is on (shard 0 without a server)."""
        guild = data.get("guild_id") if isinstance(data, dict) else None
        for session in self.sessions.values():
            shard_id, count = session.shard
            if (int(guild) >> 22) % count == shard_id if guild is not None else shard_id == 0:
                return session
        return None

    async def dispatch(self, event: str, data: Any, session: GatewaySession | None = None) -> None:
        """Send an event to the session of its server's shard (or ``session``); kept for replay
        if it is between connections."""
        session = session or self.session_for(data)
        if session is None:
            return
        if event in GUILDS_EVENTS and not session.intents & GUILDS_INTENT:
            return
        async with session.lock:
            session.seq += 1
            session.events.append((session.seq, event, data))
            if session.ws is not None and not session.ws.closed:
                await self._send_raw(session.ws, {"op": DISPATCH, "s": session.seq, "t": event, "d": data})

    # --- the websocket ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.add(ws)
        try:
            await self._send_raw(ws, {"op": HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    self.stage.record_error(f"gateway: unexpected {message.type.name} frame from the client")
                    continue
                await self._on_payload(ws, json.loads(message.data))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._sockets.discard(ws)
            for session in self.sessions.values():
                if session.ws is ws:
                    session.ws = None
            self.stage.notify()
        return ws

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"stage stopping")

    async def _on_payload(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d") or {}
        if op == HEARTBEAT:
            await self._send_raw(ws, {"op": HEARTBEAT_ACK})
        elif op == IDENTIFY:
            await self._identify(ws, data)
        elif op == RESUME:
            await self._resume(ws, data)
        # Presence (3), voice (4) and member requests (8) need no answer on the stage.

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.stage.token:
            await ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        shard_id, count = (int(n) for n in data.get("shard") or (0, 1))
        if not 0 <= shard_id < count:
            self.stage.record_error(f"gateway: IDENTIFY with shard [{shard_id}, {count}]")
        self.identify_count += 1
        session = GatewaySession(id=secrets.token_hex(16), intents=int(data.get("intents") or 0),
                                 shard=(shard_id, count), ws=ws)  # fmt: skip
        self.sessions[shard_id] = session
        guilds = [g for g in self.stage.guilds if (g >> 22) % count == shard_id]
        await self.dispatch("READY", self.stage.ready_payload(session.id, guilds, session.shard), session)
        for guild in guilds:
            await self.dispatch("GUILD_CREATE", self.stage.guild_create_payload(self.stage.guilds[guild]), session)
        self.stage.notify()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions.values() if s.id == data.get("session_id")), None)
        if session is None or data.get("token") != self.stage.token:
            await self._send_raw(ws, {"op": INVALID_SESSION, "d": False})
            return
        self.resume_count += 1
        async with session.lock:
            session.ws = ws
            since = int(data.get("seq") or 0)
            for seq, event, event_data in session.events:
                if seq > since:
                    await self._send_raw(ws, {"op": DISPATCH, "s": seq, "t": event, "d": event_data})
        await self.dispatch("RESUMED", {"_trace": ["stage"]}, session)
        self.stage.notify()

    def _require_session(self) -> GatewaySession:
        if self.session is None:
            raise RuntimeError("no bot is connected to the stage's gateway")
        return self.session

    async def _send(self, session: GatewaySession, payload: dict[str, Any]) -> None:
        async with session.lock:
            if session.ws is not None and not session.ws.closed:
                await self._send_raw(session.ws, payload)

    @staticmethod
    async def _send_raw(ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        payload.setdefault("s", None)
        payload.setdefault("t", None)
        with contextlib.suppress(ConnectionResetError):
            await ws.send_str(json.dumps(payload))
