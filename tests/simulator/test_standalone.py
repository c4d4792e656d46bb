"""``python -m bot.civitai.simulator`` serves the same API from its own process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import httpx

from tests.shared_specs import REPO_ROOT
from tests.simulator.conftest import training_body


async def test_standalone_server_accepts_any_token_and_stops_on_sigint() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.civitai.simulator", "--port", "0", "--speed", "1000", "--balance", "1234",
        stdout=asyncio.subprocess.PIPE, env=env, cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        async with httpx.AsyncClient(base_url=match.group(0), headers={"Authorization": "Bearer any"}) as client:
            priced = await client.post("/v2/consumer/workflows", params={"whatif": "true"}, json=training_body())
            assert priced.status_code == 200 and priced.json()["transactions"]["insufficientBuzz"] is True
    finally:
        process.send_signal(signal.SIGINT)
        # Generous: seen taking over 15 s once with two full suites sharing two cores.
        try:
            assert await asyncio.wait_for(process.wait(), 45) == 0
        finally:
            if process.returncode is None:
                process.kill()
