"""/dataset check, /cost, /help and continue_from's autocomplete, as members use them."""

from __future__ import annotations

from bot.app import TrainerBot
from bot.civitai.pricing import estimate_price
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.train.helpers import attachment, confirmation, eventually, only_job, simulator, submitted


async def test_dataset_check_reports_and_submits_nothing(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    ix = await alice.slash("dataset check", dataset=attachment(6))
    assert await ix.response() == 5
    report = await ix.reply(lambda m: m.embeds)
    assert report.embed["title"] == "Dataset accepted" and "6 images, 6 captioned" in report.embed["description"]
    assert [a.filename for a in report.attachments] == ["contact_sheet.png"]
    assert report.buttons == [] and report.ephemeral
    assert await trainer.services.store.jobs.list_for_user(alice.id) == []
    assert simulator(trainer).workflows == {} and simulator(trainer).whatif_requests == []

    ix = await alice.slash("dataset check", dataset_url="http://example.com/d.zip")
    assert "https" in (await ix.reply(lambda m: m.embeds)).embed["description"]


async def test_cost_is_an_estimate_with_samples_on_top(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    reply = await (await alice.slash("cost", variant="schnell", steps=3000, epochs=8)).reply()
    price = estimate_price(3000, 8)
    assert reply.ephemeral and reply.embed["title"].startswith(f"≈ {price.total:,} Buzz · Flux.1 schnell")
    text = reply.embed["description"]
    assert "**Estimate**" in text and "3000 steps × 0.9 = 2700" in text and "8 epochs × 20 = 160" in text
    assert "Sample images are billed on top" in text and f"{estimate_price(3000, 8, 3).total:,}" in text
    await trainer.services.store.guilds.update(stage.guild.id, max_steps=2000)
    reply = await (await alice.slash("cost", steps=3000)).reply()
    assert reply.embed["fields"][0]["value"] == "at most 2000 steps per run are allowed here"


async def test_help_lists_this_servers_limits_and_who_pays(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    guild = stage.guild
    role = guild.role_named("Trainer")
    await trainer.services.store.guilds.add_channel(guild.id, stage.channel("training").id)
    await trainer.services.store.guilds.update(
        guild.id, required_role_id=role.id, max_concurrent_jobs_per_user=3, guild_monthly_buzz_cap=90_000,
        max_epochs=12, cooldown_seconds=20,
    )  # fmt: skip
    reply = await (await alice.slash("help")).reply()
    limits = reply.embed["fields"][0]["value"]
    expected = [
        f"<#{stage.channel('training').id}>", f"<@&{role.id}>", "3 per member",
        "90,000 Buzz for the whole server per month", "Epochs per run**: at most 12", "every 20 s",
    ]  # fmt: skip
    assert [e for e in expected if e not in limits] == []
    assert "SIMULATED" in reply.embed["fields"][1]["value"] and "SIMULATED mode" in reply.embed["description"]


async def test_continue_from_offers_the_members_finished_epochs(
    stage: Stage, trainer: TrainerBot, alice: StageMember, bob: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3), name="Rex", steps=100, epochs=2)
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    job = await only_job(trainer, alice)
    sim = simulator(trainer)
    assert job.workflow_id is not None
    await eventually(lambda: sim.record(job.workflow_id or "").status == "succeeded")
    # What the tracker stores once the run succeeds.
    state = sim.workflow(job.workflow_id)
    await trainer.services.store.jobs.update_state(job.id, JobStatus.SUCCEEDED, state, 1.0)

    choices = await alice.autocomplete("train flux1", "continue_from", "")
    assert [c["name"] for c in choices] == [f"Rex · epoch 2/2 · job {job.id}", f"Rex · epoch 1/2 · job {job.id}"]
    last = choices[0]["value"]
    assert last.startswith("urn:air:flux1:lora:orchestrator:blob@")
    assert await bob.autocomplete("train flux1", "continue_from", "") == []
    pasted = "urn:air:flux1:lora:civitai:12@34"
    assert (await alice.autocomplete("train flux1", "continue_from", pasted))[0] == {"name": pasted, "value": pasted}

    await alice.slash("train flux1", dataset=attachment(3), continue_from=last)
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    first, second = sim.workflows.values()
    assert "continueFrom" not in first["steps"][0]["input"]
    assert second["steps"][0]["input"]["continueFrom"] == last


async def test_train_declares_every_option_with_its_range_and_choices(stage: Stage, trainer: TrainerBot) -> None:
    train = stage.find_command("train", stage.guild.id)
    assert train is not None and train.get("contexts") in (None, [0])  # servers only
    (flux1,) = train["options"]
    options = {o["name"]: o for o in flux1["options"]}
    assert list(options) == [
        "dataset", "dataset_url", "variant", "name", "trigger_word", "steps", "epochs", "lr", "network_dim",
        "network_alpha", "lr_scheduler", "optimizer", "noise_offset", "flip_augmentation", "shuffle_tokens",
        "keep_tokens", "train_text_encoder", "sample_prompts", "negative_prompt", "sample_cfg", "sample_strength",
        "continue_from", "auto_caption", "caption_style",
    ]  # fmt: skip
    ranges = {name: (o.get("min_value"), o.get("max_value")) for name, o in options.items() if "min_value" in o}
    assert ranges == {
        "steps": (1, 10000), "epochs": (1, 20), "lr": (0, 1), "network_dim": (1, 256), "network_alpha": (1, 256),
        "noise_offset": (0, 1), "keep_tokens": (0, 10),
    }  # fmt: skip
    assert [c["value"] for c in options["variant"]["choices"]] == ["dev", "schnell"]
    assert len(options["optimizer"]["choices"]) == 10 and len(options["lr_scheduler"]["choices"]) == 5
    assert options["continue_from"]["autocomplete"] is True
    assert [c["value"] for c in options["auto_caption"]["choices"]] == ["off", "missing", "all"]
    assert [c["value"] for c in options["caption_style"]["choices"]] == ["sentences", "tags"]
    assert not any(o.get("required") for o in options.values())
