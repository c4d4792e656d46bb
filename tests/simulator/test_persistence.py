"""The simulator's state survives a restart: a new ``Simulator`` on the same data directory finds
its accounts, blobs and workflows, and runs go on where simulated time has taken them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.civitai.simulator import Simulator
from bot.civitai.simulator.persistence import FILENAME
from tests.shared_specs import REPO_ROOT
from tests.simulator.conftest import DATA_HOST, TOKEN, Api, LocalSite, available, training_body

EPOCHS = 4
STEPS = 400  # per_step 1.5 s, 2 prompts × 4 s per epoch: ~632 s of training after ~42 s of waiting


def _simulator(data: Path, site: LocalSite, speed: float = 0) -> Simulator:
    sim = Simulator(speed=speed, data_dir=data, callback_backoff=0.01)
    sim.route_host(DATA_HOST, site.base_url)
    return sim


@pytest.fixture
async def first(tmp_path: Path, site: LocalSite) -> AsyncIterator[Simulator]:
    sim = _simulator(tmp_path / "sim", site)
    sim.add_account(TOKEN, 100_000)
    await sim.start()
    yield sim
    await sim.stop()


async def _advance(sim: Simulator, seconds: float, step: float = 5.0) -> None:
    """Move simulated time in small steps, so each stage begins when the one before it ended."""
    for _ in range(round(seconds / step)):
        await sim.advance(step)


async def _api(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sim.base_url or "", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


async def test_a_restarted_simulator_goes_on_with_the_run_and_makes_each_epoch_once(
    tmp_path: Path, site: LocalSite, first: Simulator
) -> None:
    async with await _api(first) as client:
        api = Api(client)
        body = training_body(external_id="job-1", steps=STEPS, epochs=EPOCHS)
        workflow_id = (await api.submit(body)).json()["id"]
        # Into training, two epochs done, the third under way.
        await _advance(first, 45 + 2 * 160 + 40)
        before = await api.get(workflow_id)
    assert before["status"] == "processing" and available(before) == [1, 2]
    models = [e["model"]["id"] for e in before["steps"][0]["output"]["epochs"]]
    samples = [s["id"] for e in before["steps"][0]["output"]["epochs"][:2] for s in e["samples"]]
    await first.stop()
    assert (tmp_path / "sim" / FILENAME).exists()

    second = _simulator(tmp_path / "sim", site)
    await second.start()
    try:
        async with await _api(second) as client:
            api = Api(client)
            resumed = await api.get(workflow_id)
            assert resumed["status"] == "processing" and available(resumed) == [1, 2]
            # Signed URLs made before the restart still work (the key was kept), on the new port.
            old_url = httpx.URL(before["steps"][0]["output"]["epochs"][0]["model"]["url"])
            assert (await client.get(old_url.raw_path.decode())).status_code == 200
            # The same externalId still answers the same workflow, charged once.
            again = await api.submit(body)
            assert again.json()["id"] == workflow_id
            await _advance(second, 400)
            done = await api.get(workflow_id)
        assert done["status"] == "succeeded" and available(done) == list(range(1, EPOCHS + 1))
        epochs = done["steps"][0]["output"]["epochs"]
        assert [e["model"]["id"] for e in epochs] == models
        assert [s["id"] for e in epochs[:2] for s in e["samples"]] == samples  # not made again
        assert all(len(e["samples"]) == 2 for e in epochs)
        assert [c["type"] for c in second.charges(TOKEN)] == ["debit"]
        assert site.fetched == ["dataset.zip"]  # the dataset was fetched once, before the restart
    finally:
        await second.stop()


async def test_simulated_time_goes_on_while_no_process_runs_it(
    tmp_path: Path, site: LocalSite, first: Simulator
) -> None:
    async with await _api(first) as client:
        workflow_id = (await Api(client).submit(training_body(steps=STEPS, epochs=EPOCHS))).json()["id"]
    first.speed = 10_000.0  # the whole run takes ~0.07 s of real time from here
    await first.stop()
    await asyncio.sleep(0.3)  # longer than the run: it ended while the simulator was down

    second = _simulator(tmp_path / "sim", site, speed=0)
    await second.start()
    try:
        async with await _api(second) as client:
            await second.settle()
            done = await Api(client).get(workflow_id)
        assert done["status"] == "succeeded" and available(done) == list(range(1, EPOCHS + 1))
    finally:
        await second.stop()


async def test_standalone_keeps_its_state_in_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    async def serve() -> tuple[asyncio.subprocess.Process, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.civitai.simulator", "--port", "0", "--speed", "0", "--balance", "50000",
            "--data", str(tmp_path / "standalone"), stdout=asyncio.subprocess.PIPE, env=env, cwd=REPO_ROOT,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        return process, match.group(0)

    async def stop(process: asyncio.subprocess.Process, sig: int) -> None:
        if process.returncode is None:
            process.send_signal(sig)
            try:
                await asyncio.wait_for(process.wait(), 45)
            finally:
                if process.returncode is None:
                    process.kill()

    process, base = await serve()
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer any"}) as client:
            body = training_body(data={"type": "zip", "sourceUrl": "https://x.test/d.zip", "count": 4})
            workflow_id = (await client.post("/v2/consumer/workflows", json=body)).json()["id"]
    finally:
        await stop(process, signal.SIGKILL)  # no shutdown code: what was written is what survives
    process, base = await serve()
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer any"}) as client:
            found = await client.get(f"/v2/consumer/workflows/{workflow_id}")
            assert found.status_code == 200 and found.json()["status"] == "unassigned"
            assert found.json()["cost"]["total"] == 2080
    finally:
        await stop(process, signal.SIGINT)


async def test_a_run_held_for_review_is_still_held_after_a_restart_and_can_be_released(
    tmp_path: Path, site: LocalSite, first: Simulator
) -> None:
    first.faults.moderation("underReview")
    async with await _api(first) as client:
        workflow_id = (await Api(client).submit(training_body(steps=STEPS, epochs=EPOCHS))).json()["id"]
        await _advance(first, 20)
        held = await Api(client).get(workflow_id)
    assert held["status"] == "preparing" and held["steps"][0]["output"]["moderationStatus"] == "underReview"
    await first.stop()

    second = _simulator(tmp_path / "sim", site)
    await second.start()
    try:
        async with await _api(second) as client:
            await _advance(second, 60)
            still = await Api(client).get(workflow_id)
            assert still["status"] == "preparing" and still["steps"][0]["output"]["moderationStatus"] == "underReview"
            second.review(workflow_id, approve=True)
            await _advance(second, 45 + 700)
            done = await Api(client).get(workflow_id)
        assert done["status"] == "succeeded" and done["steps"][0]["output"]["moderationStatus"] == "approved"
    finally:
        await second.stop()
