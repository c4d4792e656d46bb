"""Entry point: ``python -m bot`` runs the bot; subcommands run the offline tools.

    python -m bot                          run the bot
    python -m bot doctor                   check the settings, tokens, public URL and database
    python -m bot dataset check FILE.zip   check a dataset offline (--json for machines)
    python -m bot db migrate               apply the migrations to DATABASE_URL (the bot does it at start too)
    python -m bot db copy --from URL --to URL   copy every row into a new, empty database
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from bot.config import Settings

MISSING_TOKEN_HELP = """\
DISCORD_TOKEN is not set, so the bot cannot log in to Discord.

How to get one:
  1. Open https://discord.com/developers/applications and create an application (or pick yours).
  2. In "Bot", press "Reset Token" and copy the token.
  3. Put it in a file named .env next to where you run the bot:   DISCORD_TOKEN=your-token
     (or export DISCORD_TOKEN in the environment).

Without CIVITAI_TOKEN the bot runs in simulated mode: the whole flow works with generated
results and no Buzz is spent. See README.md for every setting.
"""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()]
        print("Some settings are invalid:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def run_bot() -> int:
    settings = load_settings()
    if settings.discord_token is None:
        print(MISSING_TOKEN_HELP, file=sys.stderr)
        return 2
    from bot.runner import run

    return asyncio.run(run(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="LoRA Trainer Bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("doctor", help="check the settings, both tokens, the public URL and the database for real")
    dataset = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="dataset_command")
    check = dataset.add_parser("check", help="check and report on a dataset zip, offline")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--trigger-word", help="report captions that lack this word")
    check.add_argument("--sheet", metavar="PNG", help="also write the contact sheet to this file")
    db = sub.add_parser("db", help="database tools").add_subparsers(dest="db_command")
    migrate = db.add_parser("migrate", help="apply pending migrations (to DATABASE_URL unless --url)")
    migrate.add_argument("--url", help="sqlite:///path or postgresql://… (default: DATABASE_URL, else DATA_DIR)")
    copy = db.add_parser("copy", help="copy every row of one database into a new, empty one")
    copy.add_argument("--from", dest="source", required=True, help="e.g. sqlite:///data/bot.sqlite3")
    copy.add_argument("--to", dest="target", required=True, help="e.g. postgresql://bot:password@host:5432/bot")
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
            settings=load_settings(),
            trigger_word=args.trigger_word,
            contact_sheet=args.sheet,
        )
    if args.command == "db" and args.db_command == "migrate":
        from bot import db_cli

        return asyncio.run(db_cli.migrate(args.url or load_settings().database_target))
    if args.command == "db" and args.db_command == "copy":
        from bot import db_cli

        return asyncio.run(db_cli.copy(args.source, args.target))
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
