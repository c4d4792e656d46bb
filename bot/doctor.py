"""``python -m bot doctor``: check a configuration for real and say what to fix.

Every check does the real thing rather than look at the value: it logs in to Discord, makes an
authenticated read at the orchestrator, writes to the data folder, opens and migrates the
database, and sends a request to ``PUBLIC_URL`` that only this bot can answer. The result is a
checklist; the exit status is 1 when anything failed (warnings do not count).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from bot.civitai import errors as civitai_errors
from bot.civitai.client import OrchestratorClient, RetryPolicy
from bot.civitai.simulator import Simulator
from bot.config import CivitaiMode, DatasetTransport, Settings, ensure_secret_key
from bot.db_cli import shown
from bot.hooks import DOCTOR_PROBE_PATH, doctor_proof
from bot.invite import invite_url
from bot.logging_setup import redact, register_secret, setup_logging
from bot.metrics import BotMetrics
from bot.shared_folder import look
from bot.startup import DATA_DIR_FIX, StartupError, data_dir_problem, load_settings
from bot.web.server import WebServer
from bot.web.signing import public_url_problems
from bot.web.wiring import build_web_server
from storage import Store
from storage.store import is_postgres

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 10.0
CIVITAI_KEYS_PAGE = "https://civitai.com/user/account"
DEVELOPER_PORTAL = "https://discord.com/developers/applications"


class Status(Enum):
    OK = "✓"
    WARN = "!"
    FAIL = "✗"
    SKIPPED = "-"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"{self.status.value} {self.name}: {self.detail}"]
        lines += [f"    {note}" for note in self.notes]
        if self.fix:
            lines.append(f"    → {'fix' if self.status is Status.FAIL else 'tip'}: {self.fix}")
        return redact("\n".join(lines))  # an error text could quote a token back


# -- settings ----------------------------------------------------------------------------------


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    parts = urlsplit(value)
    return parts.scheme in schemes and bool(parts.hostname)


def settings_problems(settings: Settings) -> list[str]:
    """Values that load but cannot work together, each with the setting to change."""
    problems: list[str] = []
    if not _is_url(settings.discord_api_base, ("https", "http")):
        problems.append(f"DISCORD_API_BASE {settings.discord_api_base!r} is not an http(s) URL")
    if not _is_url(settings.discord_gateway_url, ("wss", "ws")):
        problems.append(f"DISCORD_GATEWAY_URL {settings.discord_gateway_url!r} is not a ws(s) URL")
    if not _is_url(settings.orchestrator_url, ("https", "http")):
        problems.append(f"ORCHESTRATOR_URL {settings.orchestrator_url!r} is not an http(s) URL")
    if settings.min_images > settings.max_images:
        problems.append(f"MIN_IMAGES ({settings.min_images}) is above MAX_IMAGES ({settings.max_images})")
    if not settings.min_image_side <= settings.max_image_side:
        problems.append(
            f"MIN_IMAGE_SIDE ({settings.min_image_side}) is above MAX_IMAGE_SIDE ({settings.max_image_side})"
        )
    for name in ("dataset_retention_days", "callback_retention_days"):
        if getattr(settings, name) < 1:
            problems.append(f"{name.upper()} must be at least 1 day")
    if settings.public_url and settings.http_port == 0:
        problems.append("PUBLIC_URL is set but HTTP_PORT is 0 (a random port): set the port PUBLIC_URL forwards to")
    if settings.secret_key is not None and len(settings.secret_key.get_secret_value()) < 16:
        problems.append("SECRET_KEY is shorter than 16 characters: unset it and the bot generates a strong one")
    return problems


def check_settings(settings: Settings) -> Check:
    problems = settings_problems(settings)
    if problems:
        return Check("Settings", Status.FAIL, "; ".join(problems), "change these values in .env or the environment")
    source = "the environment and .env" if os.path.exists(".env") else "the environment (no .env here)"
    return Check("Settings", Status.OK, f"loaded from {source}; values are consistent")


# -- data folder and database ------------------------------------------------------------------


def check_data_folder(settings: Settings) -> Check:
    problem = data_dir_problem(settings.data_dir)
    if problem is not None:
        return Check("Data folder", Status.FAIL, problem, DATA_DIR_FIX)
    return Check("Data folder", Status.OK, f"{settings.data_dir.resolve()} is writable")


async def check_database(settings: Settings) -> Check:
    target = settings.database_target
    if settings.database_password:
        register_secret(settings.database_password)
    where = shown(target) if settings.database_url is not None else str(settings.database_path.resolve())
    try:
        store = await Store.open(target)
    except Exception as exc:
        return Check(
            "Database",
            Status.FAIL,
            f"cannot open {where}: {redact(str(exc))}",
            "check DATABASE_URL (server running, user, password, database name) or, for a SQLite file, that it"
            " is not damaged or used by an older version of the bot; restore it from a backup",
        )
    try:
        kind = await store.describe()
        version, latest = await store.schema_version()
        problems = await store.integrity_problems()
    finally:
        await store.close()
    if problems:
        return Check("Database", Status.FAIL, f"{where} is damaged: {'; '.join(problems[:3])}", "restore a backup")
    if version != latest:
        return Check(
            "Database",
            Status.FAIL,
            f"{where} ({kind}) is at schema version {version}, this code expects {latest}",
            "run the version of the bot that matches this database",
        )
    return Check(
        "Database", Status.OK, f"{kind} at {where} opens; migrations applied (schema version {version} of {latest})"
    )


# -- Discord -----------------------------------------------------------------------------------


async def check_discord(settings: Settings) -> Check:
    if settings.discord_token is None:
        return Check(
            "Discord token",
            Status.FAIL,
            "DISCORD_TOKEN is not set",
            f"create a bot in {DEVELOPER_PORTAL} (Bot → Reset Token) and put DISCORD_TOKEN=… in .env",
        )
    token = settings.discord_token.get_secret_value()
    register_secret(token)
    base = settings.discord_api_base.rstrip("/")
    headers = {"Authorization": f"Bot {token}", "User-Agent": "DiscordBot (lora-trainer-bot doctor, 0.1)"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=HTTP_TIMEOUT_SECONDS) as http:
            me = await http.get("/users/@me")
            if me.status_code == 401:
                return Check(
                    "Discord token",
                    Status.FAIL,
                    "Discord refused DISCORD_TOKEN (401 Unauthorized)",
                    f"reset the token in {DEVELOPER_PORTAL} → your application → Bot, and update DISCORD_TOKEN",
                )
            me.raise_for_status()
            application = await http.get("/oauth2/applications/@me")
    except httpx.HTTPError as exc:
        return Check(
            "Discord token",
            Status.FAIL,
            f"could not reach Discord at {base}: {type(exc).__name__}",
            "check the network, or DISCORD_API_BASE if you set it",
        )
    user = me.json()
    check = Check("Discord token", Status.OK, f"logged in as {user.get('username')} (id {user.get('id')})")
    application_id = application.json().get("id") if application.is_success else user.get("id")
    if application_id:
        check.notes.append(f"invite it to a server: {invite_url(int(application_id))}")
    return check


# -- Civitai -----------------------------------------------------------------------------------


async def _simulated(settings: Settings) -> bool:
    """As the bot decides at start-up: a server token stored in the database counts too."""
    if settings.civitai_mode is not CivitaiMode.AUTO or settings.civitai_token is not None:
        return settings.simulated
    try:
        store = await Store.open(settings.database_target)
    except Exception:
        return True
    try:
        return not await store.guilds.any_server_token()
    finally:
        await store.close()


async def check_civitai(settings: Settings) -> Check:
    name = "Civitai token"
    if await _simulated(settings):
        simulator = Simulator(accept_any_token=True)
        try:
            base_url = await simulator.start("127.0.0.1", 0)
            async with OrchestratorClient(base_url, retry=RetryPolicy(attempts=1)) as client:
                await client.session("doctor").check_token()
        except Exception as exc:
            return Check(name, Status.FAIL, f"SIMULATED mode, but the built-in simulator did not answer: {exc}")
        finally:
            await simulator.stop()
        why = "CIVITAI_MODE=simulate" if settings.civitai_mode is CivitaiMode.SIMULATE else "no Civitai token is set"
        return Check(
            name,
            Status.OK,
            f"SIMULATED mode ({why}): training runs against the built-in simulator, which answers; "
            "nothing is charged and results are generated",
            notes=["to train for real, set CIVITAI_TOKEN (or link a server token with /admin token set)"],
        )
    if settings.civitai_token is None:
        return Check(
            name,
            Status.WARN,
            "CIVITAI_TOKEN is not set: only servers and members who link their own token can train",
            f"to let the operator pay, create an API key at {CIVITAI_KEYS_PAGE} and set CIVITAI_TOKEN",
        )
    token = settings.civitai_token.get_secret_value()
    register_secret(token)
    retry = RetryPolicy(attempts=2, base_delay=0.5, max_delay=1.0)
    async with OrchestratorClient(settings.orchestrator_url, timeout=HTTP_TIMEOUT_SECONDS, retry=retry) as client:
        try:
            await client.session(token).check_token()
        except (civitai_errors.Unauthorized, civitai_errors.Forbidden) as exc:
            return Check(
                name,
                Status.FAIL,
                f"the orchestrator at {settings.orchestrator_url} refused CIVITAI_TOKEN ({type(exc).__name__})",
                f"create a new API key at {CIVITAI_KEYS_PAGE} and set CIVITAI_TOKEN to it",
            )
        except civitai_errors.OrchestratorError as exc:
            return Check(
                name,
                Status.FAIL,
                f"could not check CIVITAI_TOKEN at {settings.orchestrator_url}: {exc.user_message}",
                "check the network, or ORCHESTRATOR_URL if you set it",
            )
    return Check(name, Status.OK, f"the orchestrator at {settings.orchestrator_url} accepts CIVITAI_TOKEN")


# -- PUBLIC_URL --------------------------------------------------------------------------------


async def _start_own_server(settings: Settings) -> tuple[WebServer | None, str]:
    """Start the embedded server as the bot would; when its port is taken, assume the running bot."""
    server = build_web_server(settings, metrics=BotMetrics())
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return None, f"port {settings.http_port} is in use (the running bot, presumably): asked it"
        raise
    return server, f"started the web server on {settings.http_host}:{server.port} for the test"


def _shape_verdict(settings: Settings, problems: list[str]) -> tuple[Status, list[str]]:
    """As the bot decides at start-up (bot.startup): fatal for DATASET_TRANSPORT=hosted, else ignored."""
    if not problems:
        return Status.OK, []
    if settings.dataset_transport is DatasetTransport.HOSTED:
        return Status.FAIL, [*problems, "with DATASET_TRANSPORT=hosted the bot refuses to start until this is fixed"]
    return Status.WARN, [*problems, "the bot starts without PUBLIC_URL until this is fixed: it polls and uploads blobs"]


async def check_public_url(settings: Settings, data_folder_ok: bool) -> Check:
    name = "Public URL"
    if not settings.public_url:
        return Check(
            name,
            Status.WARN,
            "PUBLIC_URL is not set: jobs are followed by polling, datasets are uploaded as blobs",
            "for instant updates, expose HTTP_PORT over https (Caddy, nginx, a tunnel) and set PUBLIC_URL",
        )
    # Its shape is reported whatever the round trip gives: an unreachable URL can be wrong too.
    shape, shape_notes = _shape_verdict(settings, public_url_problems(settings.public_url))
    if settings.secret_key is None and not data_folder_ok:
        check = Check(name, Status.SKIPPED, "needs the data folder (where SECRET_KEY is kept); fix that first")
        if shape is not Status.OK:
            check.status, check.detail = shape, f"{settings.public_url} cannot be used as it is ({check.detail})"
        check.notes = shape_notes
        return check
    secret_key = ensure_secret_key(settings).get_secret_value()
    nonce = secrets.token_urlsafe(24)
    url = settings.public_url + DOCTOR_PROBE_PATH.format(nonce=nonce)
    try:
        server, how = await _start_own_server(settings)
    except OSError as exc:
        return Check(
            name,
            Status.FAIL,
            f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror or exc}",
            "set HTTP_HOST/HTTP_PORT to an address this machine can listen on",
            notes=shape_notes,
        )
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False) as http:
            response = await http.post(url)
    except httpx.HTTPError as exc:
        return Check(
            name,
            Status.FAIL,
            f"{settings.public_url} is unreachable ({type(exc).__name__}: {str(exc) or 'no answer'})",
            f"point PUBLIC_URL's reverse proxy or tunnel at this machine's HTTP_PORT ({settings.http_port}), "
            "and check DNS and the firewall",
            notes=[how, *shape_notes],
        )
    finally:
        if server is not None:
            await server.stop()
    if response.status_code != 200 or response.text.strip() != doctor_proof(secret_key, nonce):
        return Check(
            name,
            Status.FAIL,
            f"{settings.public_url} answered {response.status_code}, but not as this bot "
            "(another server, or another bot with a different SECRET_KEY)",
            f"make the proxy forward {settings.public_url}/hooks/ and /datasets/ to HTTP_PORT ({settings.http_port})",
            notes=[how, *shape_notes],
        )
    check = Check(name, shape, f"{settings.public_url} reaches this bot (a round trip to its hook endpoint)")
    check.notes = [how, *shape_notes]
    return check


# -- several processes (shards) ---------------------------------------------------------------


def check_shards(settings: Settings) -> Check:
    scope = settings.shard_scope
    if scope is None:
        return Check("Shards", Status.OK, "one process runs every shard (as many as Discord recommends)")
    ids = ", ".join(str(i) for i in sorted(scope.ids))
    detail = f"this process runs shard(s) {ids} of {scope.count} and follows the jobs of those servers only"
    alone = len(scope.ids) == scope.count
    if not alone and not is_postgres(settings.database_target):
        return Check(
            "Shards", Status.FAIL, detail + ", but the processes cannot share a SQLite file",
            "set DATABASE_URL=postgresql://… (the same in every process); see README, Beyond one process",
        )  # fmt: skip
    return Check("Shards", Status.OK, detail)


def check_datasets_folder(settings: Settings) -> Check:
    name = "Datasets folder"
    folder = settings.datasets_path.resolve()
    try:
        view = look(settings)
    except OSError as exc:
        return Check(name, Status.FAIL, f"cannot write to {folder} ({exc.strerror or exc})",
                     "make DATASETS_DIR writable by the bot's user")  # fmt: skip
    if not view.readable:
        return Check(name, Status.FAIL, f"{folder} does not read back what this process wrote",
                     "use a local or network folder that keeps what is written")  # fmt: skip
    scope = settings.shard_scope
    if scope is None or len(scope.ids) == scope.count:
        return Check(name, Status.OK, f"{folder} is readable and writable")
    if not view.others:
        return Check(
            name, Status.WARN, f"{folder} works, but no other process of this bot has been seen there",
            "every process must share this folder (DATASETS_DIR on a shared volume): hosted dataset links reach "
            "any process; start the others (or run their doctor), then check again",
        )  # fmt: skip
    return Check(name, Status.OK, f"{folder} is shared with the processes of shard(s) {', '.join(view.others)}")


# -- the checklist -----------------------------------------------------------------------------


async def run_checks(settings: Settings) -> list[Check]:
    checks = [check_settings(settings), check_data_folder(settings)]
    data_ok = checks[-1].status is Status.OK
    if data_ok:
        checks.append(await check_database(settings))
        checks.append(check_datasets_folder(settings))
    else:
        checks.append(Check("Database", Status.SKIPPED, "needs the data folder; fix that first"))
    checks.append(check_shards(settings))
    checks.append(await check_discord(settings))
    checks.append(await check_civitai(settings))
    checks.append(await check_public_url(settings, data_ok))
    return checks


def summary(checks: list[Check]) -> str:
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    if failed:
        return f"{failed} problem{'s' if failed > 1 else ''} to fix (see → fix above)."
    return "All checks passed" + (f", with {warned} warning{'s' if warned > 1 else ''}." if warned else ".")


async def doctor(out: TextIO = sys.stdout) -> int:
    setup_logging("WARNING")
    try:
        settings = load_settings()
    except StartupError as exc:
        for problem in exc.problems:
            print(Check("Settings", Status.FAIL, problem).render(), file=out)
        print("Fix the settings above in .env or the environment, then run the doctor again.", file=out)
        return 1
    print("LoRA Trainer Bot: checking the configuration\n", file=out)
    checks = await run_checks(settings)
    for check in checks:
        print(check.render(), file=out)
    print("\n" + summary(checks), file=out)
    return 1 if any(c.status is Status.FAIL for c in checks) else 0
