"""What an operator sees of a run: /metrics moving as it progresses, and log lines with its ids.

Both follow one real run on the stage, with callbacks (PUBLIC_URL routed to the bot's own
server by the simulator), so the scrape, the callbacks and the logs are the real ones.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.app import TrainerBot
from bot.jobs.payer import SIMULATED_TOKEN
from bot.logging_setup import log_handler
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, PUBLIC_URL, advance, finished, simulator, start_run
from tests.web.promtext import Family, parse

# Simulated seconds into a run (default timings, 60 steps, 3 epochs, 2 prompts): training starts
# at 42 s and the first progress event comes halfway through epoch 1 (10 steps × 1.5 s later).
INTO_EPOCH_ONE = 60.0


async def scrape(bot: TrainerBot) -> dict[str, Family]:
    web = bot.services.web
    assert web is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(web.base_url + "/metrics")
    assert response.status_code == 200
    return parse(response.text)


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series not counted yet (it appears on first use)."""
    for family in families.values():
        for sample_name, sample_labels, number in family.samples:
            if sample_name == name and sample_labels == labels:
                return number
    return 0.0


async def test_metrics_move_as_a_run_progresses_and_count_a_closed_dm(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    stage.faults.close_dms(alice)
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        sim = simulator(bot)
        sim.speed = 0  # time moves by hand until the run is training
        before = await scrape(bot)
        assert value(before, "lorabot_callbacks_received_total") == 0
        assert value(before, "lorabot_discord_send_failures_total", kind="dm_closed") == 0

        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        await advance(sim, INTO_EPOCH_ONE)
        await bot.services.tracker.refresh(job.id)  # whatever the callbacks started has finished
        during = await scrape(bot)
        assert value(during, "lorabot_jobs", status="processing") == 1
        assert value(during, "lorabot_jobs", status="succeeded") == 0
        assert value(during, "lorabot_callbacks_received_total") > 0
        assert value(during, "lorabot_refresh_seconds_count") > 0

        sim.speed = 400
        await stage.wait_message(thread, lambda m: "couldn't send you a DM" in m.content)
        assert (await finished(bot, job.id)).status is JobStatus.SUCCEEDED
        after = await scrape(bot)
        assert value(after, "lorabot_jobs", status="processing") == 0
        assert value(after, "lorabot_jobs", status="succeeded") == 1
        assert value(after, "lorabot_callbacks_received_total") > value(during, "lorabot_callbacks_received_total")
        assert value(after, "lorabot_refresh_seconds_count") > value(during, "lorabot_refresh_seconds_count")
        # The end's DM bounced off alice's closed DMs: counted, then said in the thread instead.
        assert value(after, "lorabot_discord_send_failures_total", kind="dm_closed") == 1



@pytest.fixture
def process_log(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The bot's log as ``python -m bot`` writes it (ids, redaction), at INFO (DEBUG for the bot)."""
    caplog.set_level(logging.INFO)
    for name in ("bot", "cogs", "storage"):
        caplog.set_level(logging.DEBUG, logger=name)
    stream = io.StringIO()
    handler = log_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_every_log_line_about_a_job_carries_its_ids_and_no_secret(
    stage: Stage, alice: StageMember, tmp_path: Path, process_log: io.StringIO
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=2, steps=40)
        await stage.wait_message(thread, lambda m: "finished training" in m.content)
        done = await finished(bot, job.id)
        hooks = [d.url for d in simulator(bot).callbacks.deliveries]
    assert done.workflow_id is not None and hooks
    lines = process_log.getvalue().splitlines()

    ids = f"[job={job.id} workflow={done.workflow_id} guild={job.guild_id}]"
    about_the_job = [line for line in lines if job.id in line.split(": ", 1)[-1]]
    told = [line for line in about_the_job if " bot.jobs." in line or " cogs.job_posts" in line]
    for words in ("Draft job", "Submitted job", "is processing", "Posted epoch 2/2", "ended succeeded"):
        assert any(words in line for line in told), f"no line says {words!r}:\n" + "\n".join(told)
    # Every line the core or the Discord sink logged about the job names it; from the submit on,
    # with its workflow and server too (the draft has no workflow yet).
    submitted = next(i for i, line in enumerate(told) if "Submitted job" in line)
    assert all(f"[job={job.id}" in line for line in told)
    assert all(ids in line for line in told[submitted:]), "\n".join(told)

    secrets = {
        "hook secret": hooks[0].rstrip("/").rsplit("/", 1)[-1],
        "Discord token": stage.token,
        "Civitai token": SIMULATED_TOKEN.get_secret_value(),
    }
    assert len(secrets["hook secret"]) >= 40
    for what, secret in secrets.items():
        assert not [line for line in lines if secret in line], f"the {what} is in the log"
    # The in-process simulator's own access log stays out (its blob URLs are signed).
    assert not [line for line in lines if "/v2/consumer/" in line and "aiohttp.access" in line]
