"""The HTTP plumbing of the stage's REST API: parsing bodies, errors, responses, headers.

Every API request goes through ``StageRequest``: the body is read (JSON or multipart with
``payload_json`` and ``files[n]``), checked against the OpenAPI document and Discord's limits,
then handled. Unknown routes fail loudly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.stage.limits import Upload

API_PREFIX = "/api/v10"
# Discord-like buckets that never run dry in tests (discord.py would pause on Remaining 0).
RATE_LIMIT = 50


class HttpError(Exception):
    """An error answer, shaped like Discord's ``{"message", "code"}``."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code, **self.extra}


def unknown(kind: str, code: int) -> HttpError:
    return HttpError(404, code, f"Unknown {kind}")


UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
CANNOT_DM = 50007
CANNOT_EDIT_OTHERS = 50005
INVALID_WEBHOOK_TOKEN = 50027
ALREADY_ACKNOWLEDGED = 40060
THREAD_LOCKED = 160005
THREAD_ALREADY_CREATED = 160004


@dataclass
class StageRequest:
    method: str
    route: str  # "POST /channels/{channel_id}/messages"
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    uploads: list[Upload] = field(default_factory=list)

    def param_int(self, name: str) -> int:
        value = self.params[name]
        if not value.isdigit():
            raise HttpError(404, 0, f"404: Not Found ({name} {value!r} is not a snowflake)")
        return int(value)


async def read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    if request.content_type == "multipart/form-data":
        payload: Any = None
        uploads: list[Upload] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            data = bytes(await part.read(decode=False))
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(data)
            else:
                uploads.append(Upload(name, part.filename or name, data, part.headers.get("Content-Type")))
        return payload, uploads
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise HttpError(400, 50109, "The request body contains invalid JSON.") from None


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim (no charset).
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


def rate_limit_headers(route: str, now: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
        "X-RateLimit-Reset": f"{now + 1:.3f}",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:16],
    }
