from __future__ import annotations

import pytest

from bot.jobs.explain import (
    GENERIC_FAILURE,
    MODERATION_REJECTED,
    SOURCE_UNREACHABLE,
    explain_end,
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
