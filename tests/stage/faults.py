"""Failures on demand: what real Discord does on a bad day, so tests can check the bot copes.

Route faults answer the next N matching requests instead of the real handler (429 with the
headers discord.py needs to wait and retry, 5xx, any error code), or let the request take effect
and never answer it (``stall``: the bot dies or times out not knowing its message exists). State
faults change the world: a member who closed their DMs, an archived or locked thread, a deleted
channel.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.stage.model import Channel

if TYPE_CHECKING:
    from tests.stage.driver import StageMember
    from tests.stage.server import Stage


@dataclass
class RouteFault:
    route: str  # "POST /channels/{channel_id}/messages"; shell wildcards allowed ("POST /channels/*")
    status: int
    body: dict[str, Any]
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # only when path params match, e.g. channel_id
    hits: int = 0
    stall: bool = False  # the request takes effect; its answer waits for ``Faults.release``

    def matches(self, route: str, params: dict[str, str]) -> bool:
        return (
            self.hits < self.times
            and fnmatch.fnmatchcase(route, self.route)
            and all(params.get(k) == v for k, v in self.params.items())
        )


class Faults:
    def __init__(self, stage: Stage) -> None:
        self._stage = stage
        self.route_faults: list[RouteFault] = []
        self.released = asyncio.Event()  # stalled answers go out once this is set (at the latest: stage stop)

    # --- route faults --------------------------------------------------------------------------
    def rate_limit(
        self, route: str, *, times: int = 1, retry_after: float = 0.05, is_global: bool = False, **params: Any
    ) -> RouteFault:
        """429 on the next ``times`` requests, shaped so discord.py waits ``retry_after`` and retries."""
        headers = {
            "Via": "1.1 google",  # without it discord.py takes the 429 for a Cloudflare ban
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Scope": "global" if is_global else "user",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
        return self._add(RouteFault(route, 429, body, times, headers, _strs(params)))

    def server_error(self, route: str, *, times: int = 1, status: int = 500, **params: Any) -> RouteFault:
        """5xx on the next ``times`` requests (discord.py retries these after 1 s, 3 s, …)."""
        body = {"message": f"{status}: stage server error", "code": 0}
        return self._add(RouteFault(route, status, body, times, {}, _strs(params)))

    def error(self, route: str, *, status: int, code: int, message: str, times: int = 1, **params: Any) -> RouteFault:
        """Any Discord error, e.g. ``error("POST /channels/*", status=403, code=50013, message=...)``."""
        return self._add(RouteFault(route, status, {"message": message, "code": code}, times, {}, _strs(params)))

    def stall(self, route: str, *, times: int = 1, **params: Any) -> RouteFault:
        """The next ``times`` requests take effect (a message is created) but are not answered
        until ``release()``: what the bot sees when it is killed, or times out, after Discord did it."""
        return self._add(RouteFault(route, 0, {}, times, {}, _strs(params), stall=True))

    def release(self) -> None:
        """Send the answers of stalled requests (to whoever still listens)."""
        self.released.set()

    def take(self, route: str, params: dict[str, str]) -> RouteFault | None:
        for fault in self.route_faults:
            if fault.matches(route, params):
                fault.hits += 1
                return fault
        return None

    def _add(self, fault: RouteFault) -> RouteFault:
        self.route_faults.append(fault)
        return fault

    # --- state faults --------------------------------------------------------------------------
    def close_dms(self, member: StageMember | str) -> None:
        """The member blocks DMs from the server: sending them one gives 403 50007."""
        self._stage.user(member).dms_open = False

    async def archive(self, thread: Channel | int | str, *, locked: bool = False) -> None:
        """Archive a thread (Discord does after inactivity); ``locked`` also locks it."""
        channel = self._stage.channel(thread)
        channel.archived, channel.locked = True, locked or channel.locked
        channel.archive_timestamp = self._stage.clock.iso()
        await self._stage.dispatch_thread_update(channel)

    async def lock(self, thread: Channel | int | str) -> None:
        """Lock (and archive) a thread: only moderators may post; the bot gets 160005."""
        await self.archive(thread, locked=True)

    async def delete_channel(self, channel: Channel | int | str) -> None:
        """Delete a channel or thread: every later request on it gets 404 10003."""
        await self._stage.delete_channel(self._stage.channel(channel))


def _strs(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(getattr(v, "id", v)) for k, v in params.items()}
