"""Entry point: ``python -m bot`` (or ``lora-trainer-bot``) runs the bot; subcommands run the tools.

    python -m bot                          run the bot
    python -m bot doctor                   check the settings, tokens, public URL and database
    python -m bot dataset check FILE.zip   check a dataset offline (--json for machines)
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.startup import ExitCode, StartupError, load_settings

MISSING_TOKEN = (
    "DISCORD_TOKEN is not set: create a bot at https://discord.com/developers/applications (Bot → Reset Token) "
    "and put DISCORD_TOKEN=… in .env or the environment (README.md, 'Set it up')"
)


def run_bot() -> int:
    try:
        settings = load_settings()
        if settings.discord_token is None:
            raise StartupError(ExitCode.SETTINGS, MISSING_TOKEN)
        from bot.runner import run

        return asyncio.run(run(settings))
    except StartupError as exc:
        print(exc.line(), file=sys.stderr)
        return exc.code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lora-trainer-bot", description="LoRA Trainer Bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("doctor", help="check the settings, both tokens, the public URL and the database for real")
    dataset = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="dataset_command")
    check = dataset.add_parser("check", help="check and report on a dataset zip, offline")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--trigger-word", help="report captions that lack this word")
    check.add_argument("--sheet", metavar="PNG", help="also write the contact sheet to this file")
    args = parser.parse_args(argv)

    if args.command in (None, "run"):
        return run_bot()
    if args.command == "doctor":
        from bot.doctor import doctor

        return asyncio.run(doctor())
    if args.command == "dataset" and args.dataset_command == "check":
        from bot.dataset.cli import check_command

        return check_command(
            args.file,
            as_json=args.json,
            settings=load_settings,
            trigger_word=args.trigger_word,
            contact_sheet=args.sheet,
        )
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
