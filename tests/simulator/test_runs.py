"""Training runs end to end over real sockets: lifecycle, callbacks, epochs, samples, models, cancel."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

from bot.civitai.simulator import Simulator
from tests.simulator.conftest import (
    Api,
    LocalSite,
    assert_valid,
    available,
    epochs_of,
    eventually,
    make_image,
    parse_safetensors,
    training_body,
)

ALL_EVENTS = ["workflow:*", "step:*", "job:*"]
STATUS_ORDER = ["unassigned", "preparing", "scheduled", "processing", "succeeded"]


@pytest.mark.parametrize("variant", ["dev", "schnell"])
async def test_default_run_succeeds_with_samples_models_and_ordered_callbacks(
    variant: str, sim: Simulator, api: Api, site: LocalSite
) -> None:
    body = training_body(variant=variant, callbacks=[{"url": site.hook_url(), "type": ALL_EVENTS, "detailed": True}])
    submitted = await api.submit(body)
    assert submitted.status_code == 202
    workflow = await api.finished(submitted.json()["id"])
    assert workflow["status"] == "succeeded"
    assert sim.workflows[workflow["id"]] == body  # kept exactly as received
    step = workflow["steps"][0]
    assert step["output"]["moderationStatus"] == "approved" and step["startedAt"] and step["completedAt"]
    assert available(workflow) == list(range(1, 11))

    async with httpx.AsyncClient() as anonymous:  # signed URLs need no token
        for epoch in epochs_of(workflow):
            assert len(epoch["samples"]) == 2
            for sample in epoch["samples"]:
                image = Image.open(io.BytesIO((await anonymous.get(sample["url"])).content))
                assert image.format == "JPEG" and image.size == (sample["width"], sample["height"])
            model = await anonymous.get(epoch["model"]["url"])
            header, _ = parse_safetensors(model.content)
            assert header["__metadata__"]["ss_epoch"] == str(epoch["epochNumber"])
            assert header["__metadata__"]["ss_base_model_version"] == f"flux1_{variant}"

    await sim.settle()
    for event in site.hooks:
        schema = {"workflow": "WorkflowEvent", "step": "WorkflowStepEvent", "job": "WorkflowStepJobEvent"}
        assert_valid("response", schema[event["$type"]], event)
    workflow_statuses = [e["status"] for e in site.hooks if e["$type"] == "workflow"]
    assert workflow_statuses == STATUS_ORDER
    progress = [e["progress"] for e in site.hooks if e["$type"] == "job" and e["progress"] is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len([e for e in site.hooks if e["$type"] == "job" and e["status"] == "processing"]) > 10


async def test_epochs_become_available_one_by_one(site: LocalSite) -> None:
    sim = Simulator(speed=0)  # time moves only when the test says so
    sim.add_account("t", 10_000)
    sim.route_host("datasets.test", site.base_url)
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer t"}) as client:
            api = Api(client)
            submitted = await api.submit(training_body(epochs=4, steps=400))
            workflow_id = submitted.json()["id"]
            seen: list[list[int]] = []
            for _ in range(80):
                await sim.advance(30)
                workflow = await api.get(workflow_id)
                seen.append(available(workflow))
                for epoch in epochs_of(workflow):
                    assert bool(epoch["samples"]) == epoch["model"]["available"]
                if workflow["status"] == "succeeded":
                    break
    finally:
        await sim.stop()
    distinct = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert distinct == [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]


async def test_blob_training_data_uses_the_uploaded_images(sim: Simulator, api: Api) -> None:
    airs = []
    for i in range(3):
        uploaded = await api.client.post("/v2/consumer/blobs", files={"file": (f"{i}.png", make_image(i), "image/png")})
        assert uploaded.status_code == 201
        blob = uploaded.json()
        assert_valid("response", "Blob", blob)
        assert blob["available"] and blob["url"]
        airs.append(f"urn:air:other:other:orchestrator:blob@{blob['id']}")
    data = {"type": "blobs", "items": [{"air": air, "caption": "sks"} for air in airs]}
    submitted = await api.submit(training_body(data=data, epochs=2))
    workflow = await api.finished(submitted.json()["id"])
    assert workflow["status"] == "succeeded" and available(workflow) == [1, 2]
    assert sim.dataset_fetches == []

    foreign = {"type": "blobs", "items": [{"air": "urn:air:other:other:orchestrator:blob@nope"}]}
    refused = await api.client.post("/v2/consumer/workflows", json=training_body(data=foreign))
    assert refused.status_code == 400
    assert "steps[0].input.trainingData.items[0].air" in refused.json()["errors"]


async def test_cancel_mid_run_stops_further_epochs(site: LocalSite) -> None:
    sim = Simulator(speed=0, callback_backoff=0.01)
    sim.add_account("t", 10_000)
    sim.route_host("datasets.test", site.base_url)
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer t"}) as client:
            api = Api(client)
            body = training_body(epochs=5, steps=500, callbacks=[{"url": site.hook_url(), "type": ["workflow:*"]}])
            workflow_id = (await api.submit(body)).json()["id"]
            while len(available(await api.get(workflow_id))) < 2:
                await sim.advance(60)
            canceled = await api.cancel(workflow_id)
            assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
            assert_valid("response", "Workflow", canceled.json())
            before = available(canceled.json())
            await sim.advance(10_000)
            after = await api.get(workflow_id)
            assert after["status"] == "canceled" and available(after) == before
            assert after["steps"][0]["status"] == "canceled"
            assert (await api.cancel(workflow_id)).status_code == 200  # cancelling again is harmless
            assert [e["status"] for e in site.hooks][-1] == "canceled"
            assert (await client.delete(f"/v2/consumer/workflows/{workflow_id}")).status_code == 204
            assert (await client.get(f"/v2/consumer/workflows/{workflow_id}")).status_code == 404
    finally:
        await sim.stop()


async def test_long_poll_until_change_returns_as_soon_as_something_changes(site: LocalSite) -> None:
    sim = Simulator(speed=0)
    sim.add_account("t", 10_000)
    sim.route_host("datasets.test", site.base_url)
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer t"}) as client:
            api = Api(client)
            workflow_id = (await api.submit(training_body())).json()["id"]
            quiet = await client.get(f"/v2/consumer/workflows/{workflow_id}", params={"wait": 1, "until": "change"})
            assert quiet.status_code == 202 and quiet.json()["status"] == "unassigned"
            poll = asyncio.create_task(api.get(workflow_id, wait=30, until="change"))
            await asyncio.sleep(0.1)
            assert not poll.done()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await sim.advance(5)
            changed = await poll
            assert changed["status"] == "preparing" and loop.time() - started < 2
    finally:
        await sim.stop()


async def test_unreadable_zip_or_wrong_count_fails_the_step(sim: Simulator, api: Api, site: LocalSite) -> None:
    site.files["broken.zip"] = b"not a zip at all"
    broken = {"type": "zip", "sourceUrl": "https://datasets.test/files/broken.zip", "count": 4}
    wrong_count = {"type": "zip", "sourceUrl": "https://datasets.test/files/dataset.zip", "count": 5}
    for data, reason in ((broken, "not a readable zip"), (wrong_count, "holds 4 images")):
        workflow = await api.finished((await api.submit(training_body(data=data))).json()["id"])
        assert workflow["status"] == "failed" and available(workflow) == []
        assert reason in (sim.record(workflow["id"]).failure_reason or "")
    await eventually(lambda: len(sim.charges("sim-test-token")) == 4)  # both refunded: never started
    assert [c["type"] for c in sim.charges("sim-test-token")] == ["debit", "credit", "debit", "credit"]
