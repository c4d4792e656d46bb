"""The Discord-free pieces: audit lines, settlement, usage periods, token shape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.accounts import TokenRejected, clean_token
from bot.audit import AuditTrail, describe
from bot.civitai.models import Workflow
from bot.jobs.settlement import settlement_of
from bot.jobs.usage import Period, period_start
from storage import Store
from storage.models import AuditEntry


def entry(action: str, actor: int | None = 7, **details: object) -> AuditEntry:
    return AuditEntry(1, 1, actor, None, action, details, datetime.now(UTC))


def test_audit_lines_read_as_sentences() -> None:
    assert describe(entry("settings.role", role=5)) == "🎭 <@7> required the <@&5> role to train"
    assert describe(entry("settings.role", role=None)) == "🎭 <@7> let everyone train (no role required)"
    assert describe(entry("member.block", member=9, reason="spam")) == "⛔ <@7> blocked <@9> from training (spam)"
    assert describe(entry("member.block", member=9, reason=None)) == "⛔ <@7> blocked <@9> from training"
    assert describe(entry("job.cancel", None, job="abc", name="dog", owner=9)).startswith("🚫 The bot cancelled")
    # Unknown actions and missing details still give a line rather than an error.
    assert describe(entry("something.new", x=1)) == "• <@7> something.new · x=1"
    assert describe(entry("job.submit")) == "📤 <@7> submitted `?` (?, ? Buzz)"


async def test_a_failing_listener_never_breaks_the_audited_action(database_url: str) -> None:
    store = await Store.open(database_url)
    trail = AuditTrail(store)
    heard: list[str] = []

    async def broken(_: AuditEntry) -> None:
        raise RuntimeError("channel gone")

    async def good(item: AuditEntry) -> None:
        await asyncio.sleep(0)
        heard.append(item.action)

    trail.subscribe(broken)
    trail.subscribe(good)
    await trail.record(1, 2, "settings.payer", {"payer": "user"})
    await trail.drain()
    assert heard == ["settings.payer"]
    assert [e.action for e in await store.audit.recent(1)] == ["settings.payer"]
    await store.close()


def workflow(status: str, *transactions: tuple[str, float]) -> Workflow:
    items = [{"type": kind, "amount": amount} for kind, amount in transactions]
    return Workflow.model_validate({"id": "wf", "status": status, "transactions": {"list": items}})


def test_settlement_counts_debits_and_credits_of_finished_runs_only() -> None:
    cancelled = settlement_of(workflow("canceled", ("debit", 1600), ("credit", 1600)))
    assert cancelled is not None and cancelled.net == 0
    partial = settlement_of(workflow("canceled", ("debit", 1600), ("credit", 400)))
    assert partial is not None and (partial.debited, partial.credited, partial.net) == (1600, 400, 1200)
    assert settlement_of(workflow("processing", ("debit", 1600))) is None
    assert settlement_of(workflow("canceled")) is None  # Civitai said nothing: leave the charge


def test_usage_periods_are_utc_calendar_periods() -> None:
    now = datetime(2024, 5, 16, 13, 30, tzinfo=UTC)  # a Thursday
    assert period_start(Period.DAY, now) == datetime(2024, 5, 16, tzinfo=UTC)
    assert period_start(Period.WEEK, now) == datetime(2024, 5, 13, tzinfo=UTC)
    assert period_start(Period.MONTH, now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert period_start(Period.ALL, now).year == 1970


@pytest.mark.parametrize("raw", ["short", "two words here!", "x" * 600, ""])
def test_tokens_of_the_wrong_shape_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        clean_token(raw)
    assert (raw not in caught.value.user_message) or not raw
    assert "Nothing was stored" in caught.value.user_message


def test_pasted_tokens_lose_spaces_and_a_bearer_prefix() -> None:
    assert clean_token("  Bearer abcdef0123456789 \n").get_secret_value() == "abcdef0123456789"
