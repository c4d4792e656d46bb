"""Injected faults behave as the real service misbehaves."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from bot.civitai.simulator import Simulator
from tests.simulator.conftest import TOKEN, Api, LocalSite, available, eventually, make_image, training_body

WORKFLOWS = "/v2/consumer/workflows"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_next_calls_fail_then_recover(sim: Simulator, api: Api, status: int) -> None:
    sim.faults.fail_next(2, status, route="submit", retry_after=1)
    body = training_body(external_id="job-1")
    for _ in range(2):
        failed = await api.client.post(WORKFLOWS, json=body)
        assert failed.status_code == status and failed.headers["Retry-After"] == "1"
    assert sim.workflows == {} and sim.charges(TOKEN) == []  # nothing happened behind the error
    submitted = await api.submit(body)
    assert submitted.status_code == 202
    assert (await api.client.get(f"{WORKFLOWS}/{submitted.json()['id']}")).status_code == 200


async def test_refused_fields_come_back_as_problem_details(sim: Simulator, api: Api) -> None:
    sim.faults.refuse_next({"steps[0].input.networkDim": ["The field networkDim must be at most 128."]})
    refused = await api.client.post(WORKFLOWS, json=training_body())
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"] == {"steps[0].input.networkDim": ["The field networkDim must be at most 128."]}
    assert sim.workflows == {}
    assert (await api.submit(training_body())).status_code == 202


async def test_fault_on_one_route_leaves_others_alone(sim: Simulator, api: Api) -> None:
    workflow_id = (await api.submit(training_body())).json()["id"]
    sim.faults.fail_next(1, 502, route="get")
    assert (await api.client.post(WORKFLOWS, json=training_body(), params={"whatif": "true"})).status_code == 200
    gateway = await api.client.get(f"{WORKFLOWS}/{workflow_id}")
    assert gateway.status_code == 502 and not gateway.headers["content-type"].startswith("application/")
    assert (await api.client.get(f"{WORKFLOWS}/{workflow_id}")).status_code == 200


async def test_slow_responses(sim: Simulator, api: Api) -> None:
    sim.faults.slow_next(1, 0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.client.post(WORKFLOWS, json=training_body(), params={"whatif": "true"})
    assert loop.time() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        sim.faults.slow_next(1, 1.0)
        await api.client.post(WORKFLOWS, json=training_body(), params={"whatif": "true"}, timeout=0.2)


async def test_moderation_rejected_fails_the_step(sim: Simulator, api: Api, site: LocalSite) -> None:
    sim.faults.moderation("rejected")
    body = training_body(callbacks=[{"url": site.hook_url(), "type": ["job:*"]}])
    workflow = await api.finished((await api.submit(body)).json()["id"])
    assert workflow["status"] == "failed" and workflow["steps"][0]["status"] == "failed"
    assert workflow["steps"][0]["output"]["moderationStatus"] == "rejected" and available(workflow) == []
    assert [c["type"] for c in sim.charges(TOKEN)] == ["debit", "credit"]  # refunded: never ran
    await sim.settle()
    assert site.hooks[-1]["status"] == "failed" and site.hooks[-1]["blockedReason"] == "moderation"


async def test_under_review_holds_until_a_human_decides(sim: Simulator, api: Api, site: LocalSite) -> None:
    sim.faults.moderation("underReview")
    body = training_body(epochs=2, callbacks=[{"url": site.hook_url(), "type": ["step:*"]}])
    workflow_id = (await api.submit(body)).json()["id"]
    # The hold comes a while into preparing, and its event reaches the site asynchronously:
    # settle() may return before either (the run is idle while it waits for simulated time).
    await eventually(lambda: len(site.hooks) >= 3)
    await sim.settle()
    held = await api.get(workflow_id)
    assert held["status"] == "preparing" and held["steps"][0]["output"]["moderationStatus"] == "underReview"
    # The hold changes no status, yet a step event says something changed (a receiver re-reads).
    assert [h["status"] for h in site.hooks] == ["unassigned", "preparing", "preparing"]
    sim.review(workflow_id, approve=True)
    workflow = await api.finished(workflow_id)
    assert workflow["status"] == "succeeded" and workflow["steps"][0]["output"]["moderationStatus"] == "approved"
    await sim.settle()
    await eventually(lambda: len(site.hooks) >= 5)
    statuses = [h["status"] for h in site.hooks]
    assert statuses[:5] == ["unassigned", "preparing", "preparing", "preparing", "scheduled"]  # release too


async def test_failure_at_epoch_keeps_earlier_epochs(sim: Simulator, api: Api, site: LocalSite) -> None:
    body = training_body(epochs=4, callbacks=[{"url": site.hook_url(), "type": ["job:failed"]}])
    workflow_id = (await api.submit(body)).json()["id"]
    sim.faults.fail_at_epoch(3, workflow_id=workflow_id, reason="no_provider_available")
    workflow = await api.finished(workflow_id)
    assert workflow["status"] == "failed" and available(workflow) == [1, 2]
    assert [c["type"] for c in sim.charges(TOKEN)] == ["debit"]  # it ran: no refund
    await eventually(lambda: len(site.hooks) == 1)
    assert site.hooks[0]["reason"] == "no_provider_available"


async def test_expiry(sim: Simulator, api: Api) -> None:
    sim.faults.expire()
    workflow = await api.finished((await api.submit(training_body())).json()["id"])
    assert workflow["status"] == "expired" and workflow["steps"][0]["startedAt"] is None


def _keys(hooks: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(h["$type"], h["status"], h.get("progress")) for h in hooks]


async def _run_with_hooks(sim: Simulator, api: Api, site: LocalSite) -> list[tuple[str, str, Any]]:
    body = training_body(epochs=2, callbacks=[{"url": site.hook_url(), "type": ["workflow:*"]}])
    await api.finished((await api.submit(body)).json()["id"])
    await sim.settle()
    return _keys(site.hooks)


async def test_duplicate_callbacks(sim: Simulator, api: Api, site: LocalSite) -> None:
    sim.faults.duplicate_callbacks(2)
    statuses = [k[1] for k in await _run_with_hooks(sim, api, site)]
    assert statuses == ["unassigned", "unassigned", "preparing", "preparing", "scheduled", "processing", "succeeded"]


async def test_out_of_order_and_replayed_callbacks(sim: Simulator, api: Api, site: LocalSite) -> None:
    sim.faults.reorder_callbacks(1)
    sim.faults.replay_callback(after=3)
    statuses = [k[1] for k in await _run_with_hooks(sim, api, site)]
    # "unassigned" is held back behind "preparing" and sent again three events later.
    assert statuses == ["preparing", "unassigned", "scheduled", "processing", "unassigned", "succeeded"]


async def test_callbacks_are_retried_until_accepted_and_stay_in_order(
    sim: Simulator, api: Api, site: LocalSite
) -> None:
    site.hook_failures = 3
    statuses = [k[1] for k in await _run_with_hooks(sim, api, site)]
    assert statuses == ["unassigned", "preparing", "scheduled", "processing", "succeeded"]
    attempts = Counter(d.payload["status"] for d in sim.callbacks.deliveries)
    assert attempts["unassigned"] == 4 and site.hook_attempts == 8


async def test_blob_urls_expire_and_refresh(sim: Simulator, api: Api) -> None:
    png = make_image(7)
    uploaded = (await api.client.post("/v2/consumer/blobs", files={"file": ("a.png", png, "image/png")})).json()
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(uploaded["url"])).status_code == 200
        forged = uploaded["url"][:-3] + ("AAA" if not uploaded["url"].endswith("AAA") else "BBB")
        assert (await anonymous.get(forged)).status_code == 401  # the content route's documented refusal
        sim.faults.blob_url_ttl(0.2)
        short = (await api.client.post(f"/v2/consumer/blobs/{uploaded['id']}/refresh")).json()
        await asyncio.sleep(0.3)
        assert (await anonymous.get(short["url"])).status_code == 401
        sim.faults.blob_url_ttl(3600)
        fresh = (await api.client.post(f"/v2/consumer/blobs/{uploaded['id']}/refresh")).json()
        assert fresh["url"] != short["url"] and (await anonymous.get(fresh["url"])).content == png
