"""Watch a whole simulated run in the terminal: the stage, the real bot, alice's /train.

    python -m tests.stage.demo                 # a 3-epoch run, about half a minute
    python -m tests.stage.demo --speed 5000    # the same, in a few seconds

The fake Discord (the stage) starts, the real bot connects to it in simulated mode, and alice
trains a LoRA on a small generated dataset. Every message the bot posts or edits is printed as
it arrives, where a member would see it: the ephemeral replies only alice sees, the public job
card, the job's thread with each epoch's samples, and the DM at the end. Nothing leaves loopback
and nothing is kept (the bot's data folder is temporary).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from bot.logging_setup import setup_logging
from tests.stage.bots import bot_in_process
from tests.stage.model import Message
from tests.stage.server import MessageState, Stage
from tests.train.helpers import attachment, confirmation, submitted

POLL_SECONDS = 0.05
MENTION = re.compile(r"<@!?(\d+)>")
CHANNEL = re.compile(r"<#(\d+)>")


class Printer:
    """Prints each state of each message once, as members read it."""

    def __init__(self, stage: Stage, out: Callable[[str], None]) -> None:
        self.stage, self.out = stage, out
        self.started = time.monotonic()
        self.shown = 0
        self.edits: dict[int, int] = {}
        self.texts: dict[int, list[str]] = {}

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def where(self, state: MessageState, message: Message) -> str:
        channel = self.stage.channels[state.channel_id]
        if channel.recipient is not None:
            place = f"DM to {channel.recipient.username}"
        elif channel.is_thread:
            place = f"thread “{channel.name}”"
        else:
            place = f"#{channel.name}"
        if message.visible_to is not None:
            place += f", only {self.stage.users[message.visible_to].username} sees it"
        return place

    def flush(self) -> None:
        states = self.stage.message_states
        for state in states[self.shown :]:
            self.show(state)
        self.shown = len(states)

    def readable(self, text: str) -> str:
        """Mentions as a member reads them: <@id> → @alice, <#id> → #channel."""
        text = MENTION.sub(lambda m: "@" + self.stage.users[int(m.group(1))].username, text)
        return CHANNEL.sub(lambda m: "#" + self.stage.channels[int(m.group(1))].name, text)

    def show(self, state: MessageState) -> None:
        message = self.stage.messages[state.message_id]
        before = self.texts.get(state.message_id)
        edits = self.edits[state.message_id] = self.edits.get(state.message_id, -1) + 1
        what = "new" if edits == 0 else ("deleted" if state.deleted else f"edit {edits}")
        self.say(f"{self.where(state, message)} · {what}")
        if state.loading:
            self.out("    (the bot is thinking…)")
            return
        if state.deleted:
            return
        lines = self.readable(state.text).splitlines()
        self.texts[state.message_id] = lines
        # An edit shows what changed: a job card is edited a dozen times, mostly one line.
        shown = lines if before is None else [line for line in lines if line not in before]
        for line in shown:
            self.out("    " + textwrap.shorten(line, 110, placeholder=" …"))
        if len(shown) < len(lines):
            self.out(f"    (and {len(lines) - len(shown)} unchanged lines)")
        files = [a.filename for a in message.attachments]
        if files and before is None:
            self.out(f"    [files: {', '.join(files)}]")

    async def follow(self) -> None:
        while True:
            self.flush()
            await asyncio.sleep(POLL_SECONDS)


async def demo(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory(prefix="lora-demo-") as data:
        async with Stage() as stage:
            printer = Printer(stage, out)
            printer.say("the stage is up; starting the real bot in simulated mode …")
            async with bot_in_process(stage, Path(data) / "bot", simulator_speed=args.speed):
                follower = asyncio.create_task(printer.follow())
                try:
                    await train(stage, printer, args)
                finally:
                    follower.cancel()
                    printer.flush()
        stage.check()  # anything Discord would have refused fails the demo too
    printer.say("done: every message above is what alice and the server saw.")
    return 0


async def train(stage: Stage, printer: Printer, args: argparse.Namespace) -> None:
    alice = stage.member("alice")
    command = f"/train flux1 dataset:dog.zip ({args.images} images) name:Rex steps:{args.steps} epochs:{args.epochs}"
    printer.say(f"alice types {command}")
    await alice.slash("train flux1", dataset=attachment(args.images), name="Rex", steps=args.steps, epochs=args.epochs)
    confirm = await confirmation(alice)
    printer.flush()
    printer.say("alice presses Confirm")
    await alice.click(confirm, label="Confirm")
    await alice.wait_ephemeral(submitted)
    card = await stage.wait_message("general", lambda m: "Rex" in m.embed["title"])
    await stage.wait_thread(parent="general")
    run_seconds = max(30.0, 2 * args.steps * 8 / args.speed + 10)  # generous: about 8 s per step at speed 1
    await stage.wait_message(card, lambda m: "finished training" in m.content, timeout=run_seconds)
    await alice.wait_dm(lambda m: "Rex" in m.content, timeout=10)
    await stage.wait_message("general", lambda m: m.id == card.id and "Finished" in m.text, timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stage.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=400, help="simulated time per real second (default 400)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, each posting its samples (default 3)")
    parser.add_argument("--images", type=int, default=4, help="images in the generated dataset (default 4)")
    parser.add_argument("--log-level", default="ERROR", help="the bot's own log on stderr (default ERROR)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    logging.getLogger("discord").setLevel(max(logging.WARNING, logging.getLogger().level))
    return asyncio.run(demo(args, print))


if __name__ == "__main__":
    sys.exit(main())
