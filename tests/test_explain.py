from __future__ import annotations

import pytest

from bot.jobs.explain import (
    GENERIC_FAILURE,
    MODERATION_REJECTED,
    SOURCE_UNREACHABLE,
    LostReason,
    explain_end,
    explain_lost,
)


def test_moderation_rejection_wins_and_is_case_insensitive() -> None:
    assert explain_end("failed", reason="timeout", moderation="Rejected") is MODERATION_REJECTED


@pytest.mark.parametrize("reason", ["no_provider_available", "blocked", "timeout", "expired", "canceled"])
def test_each_documented_reason_has_its_own_fix(reason: str) -> None:
    explanation = explain_end("failed", reason=reason)
    assert explanation is not GENERIC_FAILURE
    assert explanation.fix


def test_status_alone_and_unknown_reasons() -> None:
    assert explain_end("expired").headline.startswith("The run expired")
    assert explain_end("failed", reason="trainingData.sourceUrl not reachable") is SOURCE_UNREACHABLE
    assert explain_end("failed", reason="something new") is GENERIC_FAILURE


def test_a_lost_run_says_what_happened_and_only_what_is_known_about_money() -> None:
    gone = explain_lost("workflow_gone", simulated=False, charged=1828.0)
    assert gone.headline == "Civitai no longer has this run"
    assert "1,828 Buzz was charged when it was submitted" in gone.detail and "may have refunded" in gone.detail
    assert "nothing was charged" not in gone.detail.lower()
    unknown = explain_lost("token_removed", simulated=False, charged=0.0)
    assert "No charge for it was recorded here" in unknown.detail and "may still be running" in unknown.detail
    simulated = explain_lost("workflow_gone", simulated=True, charged=1828.0)
    assert simulated.headline.startswith("The simulator") and "Nothing was charged" in simulated.detail
    assert "real mode" in explain_lost(LostReason.REAL_IN_SIMULATED_MODE, simulated=False, charged=5).fix
    assert explain_lost("something new", simulated=False, charged=None).headline == gone.headline
    assert {r for r in LostReason if r.may_still_run} == {LostReason.TOKEN_REMOVED, LostReason.REAL_IN_SIMULATED_MODE}
