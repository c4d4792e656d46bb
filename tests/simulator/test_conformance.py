"""Conformance: every status code the OpenAPI document gives an endpoint the bot uses is one the
simulator can answer, with the documented body. The list of cases comes from the document
itself, so a status added there fails here until the simulator models it.

Most statuses come from modelled behaviour; the few the document gives without saying when
(a 403 on PUT, a 500 from the content route) and the 429 of a rate limit come from fault
injection, which answers in the same documented shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.civitai.simulator import Simulator
from bot.civitai.simulator.routes import RESPONSE_OBSERVERS, Answer
from tests.civitai_spec import SPEC_NAME, check_answer, documented_responses
from tests.shared_specs import spec_path
from tests.simulator.conftest import Api, make_image, training_body

WORKFLOWS = "/v2/consumer/workflows"
BLOBS = "/v2/consumer/blobs"
# Every endpoint the bot calls (DELETE and HEAD are modelled too, but the bot does not use them).
ROUTES_THE_BOT_USES = ("submit", "list", "get", "update", "upload_blob", "refresh_blob", "get_blob", "blob_content")
Provoke = Callable[[Simulator, Api], Awaitable[httpx.Response]]


def _cases() -> list[tuple[str, int]]:
    if spec_path(SPEC_NAME) is None:
        return []
    return [(route, status) for route in ROUTES_THE_BOT_USES for status in sorted(documented_responses(route))]


async def _anonymous(sim: Simulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.base_url or "", headers={"Authorization": "Bearer wrong"}) as other:
        return await other.request(method, path, **kwargs)


async def _running(sim: Simulator, api: Api) -> str:
    sim.speed = 0  # stands still: the run stays where it is
    workflow_id: str = (await api.submit(training_body())).json()["id"]
    return workflow_id


async def _uploaded(api: Api, name: str = "a.png") -> dict[str, Any]:
    response = await api.client.post(BLOBS, files={"file": (name, make_image(1), "image/png")})
    blob: dict[str, Any] = response.json()
    return blob


async def _signed(sim: Simulator, api: Api) -> str:
    url: str = (await _uploaded(api))["url"]
    return url


async def _refresh(sim: Simulator, api: Api, blob_id: str) -> httpx.Response:
    return await api.client.post(f"{BLOBS}/{blob_id}/refresh")


def _fault(route: str, status: int, call: Provoke) -> Provoke:
    async def provoke(sim: Simulator, api: Api) -> httpx.Response:
        sim.faults.fail_next(1, status, route=route, retry_after=3 if status == 429 else None)
        return await call(sim, api)

    return provoke


async def _blocked_blob(sim: Simulator, api: Api) -> httpx.Response:
    sim.faults.block_uploads("bad.png", as_blob=True)
    blob = await _uploaded(api, "bad.png")
    return await api.client.get(f"{BLOBS}/{blob['id']}")


async def _upload_blocked(sim: Simulator, api: Api) -> httpx.Response:
    sim.faults.block_uploads("bad.png")
    return await api.client.post(BLOBS, files={"file": ("bad.png", make_image(2), "image/png")})


async def _poor_submit(sim: Simulator, api: Api) -> httpx.Response:
    sim.add_account("poor", 10)
    async with httpx.AsyncClient(base_url=sim.base_url or "", headers={"Authorization": "Bearer poor"}) as poor:
        return await poor.post(WORKFLOWS, json=training_body())


async def _held_get(sim: Simulator, api: Api) -> httpx.Response:
    workflow_id = await _running(sim, api)
    return await api.client.get(f"{WORKFLOWS}/{workflow_id}", params={"wait": 1, "until": "change"})


async def _get(sim: Simulator, api: Api) -> httpx.Response:
    return await api.client.get(f"{WORKFLOWS}/{await _running(sim, api)}")


async def _update(sim: Simulator, api: Api, body: dict[str, Any]) -> httpx.Response:
    return await api.client.put(f"{WORKFLOWS}/{await _running(sim, api)}", json=body)


async def _cancel(sim: Simulator, api: Api) -> httpx.Response:
    return await _update(sim, api, {"status": "canceled"})


async def _content(sim: Simulator, api: Api) -> httpx.Response:
    return await api.client.get(await _signed(sim, api))


PROVOKE: dict[tuple[str, int], Provoke] = {
    ("submit", 200): lambda sim, api: api.client.post(WORKFLOWS, params={"whatif": "true"}, json=training_body()),
    ("submit", 202): lambda sim, api: api.client.post(WORKFLOWS, json=training_body()),
    ("submit", 400): lambda sim, api: api.client.post(WORKFLOWS, json=training_body(steps=0)),
    ("submit", 401): lambda sim, api: _anonymous(sim, "POST", WORKFLOWS, json=training_body()),
    ("submit", 403): _poor_submit,
    ("submit", 429): _fault("submit", 429, lambda sim, api: api.client.post(WORKFLOWS, json=training_body())),
    ("list", 200): lambda sim, api: api.client.get(WORKFLOWS, params={"take": 5}),
    ("list", 401): lambda sim, api: _anonymous(sim, "GET", WORKFLOWS),
    ("get", 200): _get,
    ("get", 202): _held_get,
    ("get", 401): lambda sim, api: _anonymous(sim, "GET", f"{WORKFLOWS}/wf-x"),
    ("get", 404): lambda sim, api: api.client.get(f"{WORKFLOWS}/wf-unknown"),
    ("update", 200): _cancel,
    ("update", 400): lambda sim, api: _update(sim, api, {"status": "succeeded"}),
    ("update", 401): lambda sim, api: _anonymous(sim, "PUT", f"{WORKFLOWS}/wf-x", json={"status": "canceled"}),
    ("update", 403): _fault("update", 403, _cancel),
    ("update", 404): lambda sim, api: api.client.put(f"{WORKFLOWS}/wf-unknown", json={"status": "canceled"}),
    ("upload_blob", 201): lambda sim, api: api.client.post(BLOBS, files={"file": ("a.png", make_image(1))}),
    ("upload_blob", 400): lambda sim, api: api.client.post(BLOBS, content=b""),
    ("upload_blob", 401): lambda sim, api: _anonymous(sim, "POST", BLOBS, files={"file": ("a.png", b"x")}),
    ("upload_blob", 413): lambda sim, api: _too_large(sim, api),
    ("upload_blob", 415): lambda sim, api: api.client.post(BLOBS, files={"file": ("a.txt", b"not an image")}),
    ("upload_blob", 422): _upload_blocked,
    ("refresh_blob", 200): lambda sim, api: _refresh_uploaded(sim, api),
    ("refresh_blob", 401): lambda sim, api: _anonymous(sim, "POST", f"{BLOBS}/b-x/refresh"),
    ("refresh_blob", 404): lambda sim, api: _refresh(sim, api, "b-unknown"),
    ("get_blob", 308): lambda sim, api: _get_uploaded(sim, api),
    ("get_blob", 401): lambda sim, api: _anonymous(sim, "GET", f"{BLOBS}/b-x"),
    ("get_blob", 403): _blocked_blob,
    ("get_blob", 404): lambda sim, api: api.client.get(f"{BLOBS}/b-unknown"),
    ("blob_content", 200): _content,
    ("blob_content", 400): lambda sim, api: api.client.get(f"{BLOBS}/content/!!!~x"),
    ("blob_content", 401): lambda sim, api: _expired_content(sim, api),
    ("blob_content", 404): lambda sim, api: _content_of_a_deleted_blob(sim, api),
    ("blob_content", 500): _fault("blob_content", 500, _content),
}


async def _too_large(sim: Simulator, api: Api) -> httpx.Response:
    sim.max_upload = 1024  # the service's limit is not published; the simulator's is 50 MiB
    return await api.client.post(BLOBS, files={"file": ("big.png", b"\0" * 2048)})


async def _refresh_uploaded(sim: Simulator, api: Api) -> httpx.Response:
    return await _refresh(sim, api, (await _uploaded(api))["id"])


async def _get_uploaded(sim: Simulator, api: Api) -> httpx.Response:
    return await api.client.get(f"{BLOBS}/{(await _uploaded(api))['id']}")


async def _expired_content(sim: Simulator, api: Api) -> httpx.Response:
    sim.faults.blob_url_ttl(-1)
    return await api.client.get(await _signed(sim, api))


async def _content_of_a_deleted_blob(sim: Simulator, api: Api) -> httpx.Response:
    url, _ = sim.blobs.sign(sim.base_url or "", "b-never-stored")
    return await api.client.get(url)


@pytest.fixture
def answers() -> Iterator[list[Answer]]:
    seen: list[Answer] = []
    RESPONSE_OBSERVERS.append(seen.append)
    yield seen
    RESPONSE_OBSERVERS.remove(seen.append)


@pytest.mark.parametrize(("route", "status"), _cases())
async def test_each_documented_status_is_answered_as_documented(
    sim: Simulator, api: Api, answers: list[Answer], route: str, status: int
) -> None:
    provoke = PROVOKE.get((route, status))
    assert provoke is not None, f"the document gives {route} a {status}: the simulator must model it"
    response = await provoke(sim, api)
    assert response.status_code == status, response.text
    answer = answers[-1]
    assert (answer.route, answer.status) == (route, status)
    assert check_answer(route, status, answer.content_type, answer.body) == []


def test_every_provoked_case_is_one_the_document_gives() -> None:
    if spec_path(SPEC_NAME) is None:
        pytest.skip("the OpenAPI document is absent")
    assert sorted(PROVOKE) == sorted(_cases()), "a case here the document does not give (or one missing)"


def test_the_answer_check_can_fail() -> None:
    if spec_path(SPEC_NAME) is None:
        pytest.skip("the OpenAPI document is absent")
    assert check_answer("get", 200, "application/json", b'{"status": "pending", "steps": 3}')
    assert check_answer("upload_blob", 201, "text/plain", b"ok")
    assert check_answer("get", 404, "application/json", b'{"status": "not a number"}')
