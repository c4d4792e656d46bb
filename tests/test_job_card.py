"""The job card shows what a member needs at each stage of a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cogs.job_card import SIMULATED_BADGE, job_card_embed
from storage.models import Job, JobStatus, Payer, TokenSource, Variant

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def job(status: JobStatus, **changes: Any) -> Job:
    values: dict[str, Any] = dict(
        id="abc123", guild_id=1, channel_id=2, user_id=3, name="Rex", variant=Variant.DEV,
        params={"steps": 2000, "epochs": 10, "lr": 0.0001, "network_dim": 16, "network_alpha": 16},
        dataset_digest="d" * 64, image_count=20, payer=Payer.OPERATOR, token_source=TokenSource.OPERATOR,
        external_id="ltb-abc123", hook_secret_hash=None, workflow_id="wf-1", status=status,
        price_estimate=2000.0, price_quoted=2012.0, price_charged=None, final_cost=None,
        last_state={"steps": [{"queuePosition": {"precedingJobs": 3,
                                                 "estimatedCompleteAt": (NOW + timedelta(hours=1)).isoformat()}}]},
        last_state_at=NOW, progress=0.4, card_channel_id=None, card_message_id=None, thread_id=None,
        simulated=False, created_at=NOW, updated_at=NOW, submitted_at=NOW, finished_at=None,
    )
    values.update(changes)
    return Job(**values)


def fields(status: JobStatus, **changes: Any) -> dict[str, str]:
    return {f.name: str(f.value) for f in job_card_embed(job(status, **changes)).fields}


def test_queued_runs_show_the_queue_and_eta() -> None:
    shown = fields(JobStatus.SCHEDULED)
    assert shown["Queue"] == "3 run(s) ahead"
    assert shown["ETA"].startswith("finishes <t:")
    assert shown["Price"] == "2,012 Buzz"


def test_training_runs_show_progress_and_eta_but_no_queue() -> None:
    shown = fields(JobStatus.PROCESSING)
    assert "Queue" not in shown
    assert "40%" in shown["Progress"] and "ETA" in shown


def test_finished_runs_drop_queue_and_eta_and_simulated_ones_say_so() -> None:
    embed = job_card_embed(job(JobStatus.SUCCEEDED, simulated=True, final_cost=1990.0))
    shown = {f.name: str(f.value) for f in embed.fields}
    assert "Queue" not in shown and "ETA" not in shown
    assert "100%" in shown["Progress"] and shown["Price"] == "1,990 Buzz (simulated)"
    assert embed.title is not None and embed.title.startswith(SIMULATED_BADGE)
    assert embed.footer.text is not None and "SIMULATED" in embed.footer.text
