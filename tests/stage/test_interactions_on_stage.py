"""Commands, options, buttons, selects, modals and autocomplete, through the real discord.py."""

from __future__ import annotations

import pytest

from bot.app import TrainerBot
from tests.stage import Attachment, Stage, StageError, StageMember


async def test_options_subcommands_and_an_attachment_reach_the_command(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("probe echo", text="hi", count=2, loud=True, file=Attachment("d.zip", b"x" * 1234))
    assert (await ix.reply()).content == "HIHI file=d.zip:1234"

    ix = await alice.slash("probe deep nested", value="v")
    assert (await ix.reply()).content == "nested v"


async def test_the_driver_refuses_what_the_discord_client_would_not_send(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    with pytest.raises(StageError, match="required options"):
        await alice.slash("probe echo")
    with pytest.raises(StageError, match=r"1\.\.10"):
        await alice.slash("probe echo", text="x", count=11)
    with pytest.raises(StageError, match="no option 'nope'"):
        await alice.slash("probe echo", text="x", nope=1)
    with pytest.raises(StageError, match="not a command the bot registered"):
        await alice.slash("nothing")


async def test_buttons_update_the_message_and_disabled_buttons_cannot_be_pressed(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember, bob: StageMember
) -> None:
    await alice.slash("probe buttons")
    card = await stage.wait_message("general", lambda m: m.content == "Choose")
    assert [b["label"] for b in card.buttons] == ["Confirm", "Details", "Refresh"]

    ix = await bob.click(card, label="Confirm")
    assert await ix.response() == 7  # UPDATE_MESSAGE
    assert card.content == "Confirmed" and card.button(label="Confirm")["disabled"] is True
    with pytest.raises(StageError, match="disabled"):
        await alice.click(card, label="Confirm")


async def test_a_deferred_update_then_an_edit_of_original_changes_the_card(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("probe buttons")
    card = await stage.wait_message("general", lambda m: m.content == "Choose")
    ix = await alice.click(card, label="Refresh")
    assert await ix.response() == 6  # DEFERRED_UPDATE_MESSAGE
    assert await stage.wait_message("general", lambda m: m.content == "Refreshed") is card
    assert ix.original is card and card.edit_count == 1


async def test_select_and_modal_round_trip(stage: Stage, probe_bot: TrainerBot, alice: StageMember) -> None:
    await alice.slash("probe buttons")
    card = await stage.wait_message("general", lambda m: m.content == "Choose")

    await alice.choose(card, "probe:fruit", ["apple", "plum"])
    assert (await alice.wait_ephemeral()).content == "picked apple,plum"

    ix = await alice.click(card, custom_id="probe:details")
    modal = await ix.modal()
    assert modal.title == "Sample prompts"
    assert [i["custom_id"] for i in modal.inputs] == ["probe:prompts", "probe:note"]
    await alice.submit_modal(modal, Prompts="a cat\na dog")
    assert (await alice.wait_ephemeral()).content == "prompts=a cat\na dog note=none"


async def test_autocomplete_returns_the_bots_choices(stage: Stage, probe_bot: TrainerBot, alice: StageMember) -> None:
    choices = await alice.autocomplete("probe pick", "fruit", "ap")
    assert choices == [{"name": "Apple", "value": "apple"}, {"name": "Apricot", "value": "apricot"}]


async def test_a_deferred_answer_is_replaced_by_the_first_follow_up(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("probe defer")
    assert await ix.response() == 5
    reply = await ix.reply()
    assert reply is ix.original and reply.content == "done after thinking" and reply.ephemeral

    ix = await alice.slash("probe defer", public=True)
    public = await stage.wait_message("general", lambda m: m.content == "done after thinking")
    assert public is (await ix.reply()) and not public.ephemeral


async def test_help_works_in_dms(stage: Stage, bot_on_stage: TrainerBot, alice: StageMember) -> None:
    ix = await alice.in_dm().slash("help")
    reply = await ix.reply()
    assert reply.embed["title"] == "LoRA Trainer"
    assert stage.channels[reply.channel_id].recipient is alice.user
