"""Run the simulator standalone: ``python -m bot.civitai.simulator --port 8765 --speed 100``.

Any bearer token is accepted with a default balance unless ``--token`` accounts are given. With
``--data DIR`` its state (accounts, workflows, blobs, its clock) is kept in DIR, so it can run
beside a bot as a separate process across restarts of either.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from bot.civitai.simulator.server import Simulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.civitai.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--balance", type=int, default=100_000, help="Buzz of each account")
    parser.add_argument("--token", action="append", default=[],
                        help="accept only these bearer tokens (repeatable); default: accept any")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep state in this directory (SQLite and blob files) across restarts")
    parser.add_argument("--route", action="append", default=[], metavar="HOST=URL",
                        help="send requests for HOST (callbacks, dataset downloads) to URL instead,"
                             " e.g. bot.test=http://127.0.0.1:8080 (repeatable)")
    parser.add_argument("--refuse-foreign-sources", action="store_true",
                        help="refuse zip sourceUrls outside its own storage (clients must upload blobs)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = Simulator(speed=args.speed, accept_any_token=not args.token, default_balance=args.balance,
                    data_dir=args.data, refuse_foreign_sources=args.refuse_foreign_sources)
    for token in args.token:
        sim.ensure_account(token, args.balance)
    for route in args.route:
        host, _, url = route.partition("=")
        if not host or not url:
            raise SystemExit(f"--route {route!r}: use HOST=URL, e.g. bot.test=http://127.0.0.1:8080")
        sim.route_host(host, url)
    base_url = await sim.start(args.host, args.port)
    print(f"Civitai orchestrator simulator on {base_url} (speed ×{args.speed:g}); Ctrl+C stops it.", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(_parse(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
