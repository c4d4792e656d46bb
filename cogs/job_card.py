"""The public job card: the one message in the channel that always shows where a run stands.

``/train`` posts it, the tracker edits it (throttled), ``/jobs show`` reproduces it. All three
call ``job_card_embed`` so the card reads the same wherever a member meets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import discord

from bot.jobs.explain import explain_lost
from bot.jobs.policy import relative_time
from bot.render.progress import progress_bar
from storage.models import Job, JobStatus

STATUS_LABELS: dict[JobStatus, tuple[str, discord.Colour]] = {
    JobStatus.DRAFT: ("📝 Waiting for confirmation", discord.Colour.light_grey()),
    JobStatus.SUBMITTING: ("📤 Submitting", discord.Colour.light_grey()),
    JobStatus.SUBMITTED: ("📤 Submitted", discord.Colour.blurple()),
    JobStatus.UNASSIGNED: ("⏳ Queued", discord.Colour.blurple()),
    JobStatus.PREPARING: ("⚙️ Preparing", discord.Colour.blurple()),
    JobStatus.SCHEDULED: ("📅 Scheduled", discord.Colour.blurple()),
    JobStatus.PROCESSING: ("🔥 Training", discord.Colour.orange()),
    JobStatus.SUCCEEDED: ("✅ Finished", discord.Colour.green()),
    JobStatus.FAILED: ("❌ Failed", discord.Colour.red()),
    JobStatus.EXPIRED: ("⌛ Expired", discord.Colour.dark_red()),
    JobStatus.CANCELED: ("🚫 Cancelled", discord.Colour.dark_grey()),
    JobStatus.DISCARDED: ("🗑️ Not submitted", discord.Colour.dark_grey()),
    JobStatus.LOST: ("❓ Lost", discord.Colour.dark_red()),
}
SIMULATED_BADGE = "🧪 SIMULATED"


def status_label(status: JobStatus) -> str:
    return STATUS_LABELS[status][0]


def _queue_and_eta(state: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """Queue position and ETA from the last authoritative workflow (raw JSON), when known."""
    steps = (state or {}).get("steps") or []
    step = steps[0] if steps and isinstance(steps[0], dict) else {}
    queue = step.get("queuePosition") or {}
    position = queue.get("precedingJobs")
    queue_text = f"{position} run(s) ahead" if isinstance(position, int) else None
    eta_text = None
    for key in ("estimatedCompleteAt", "estimatedStartAt"):
        raw = queue.get(key)
        if isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                continue
            verb = "finishes" if key == "estimatedCompleteAt" else "starts"
            eta_text = f"{verb} {relative_time(moment)}"
            break
    return queue_text, eta_text


def job_card_embed(job: Job, *, user_mention: str | None = None, epochs_done: int | None = None) -> discord.Embed:
    label, colour = STATUS_LABELS.get(job.status, (job.status.value, discord.Colour.default()))
    title = f"{job.name} · Flux.1 {job.variant.value} LoRA"
    if job.simulated:
        title = f"{SIMULATED_BADGE} · {title}"
    embed = discord.Embed(title=title[:256], colour=colour)
    params = job.params
    embed.add_field(name="Status", value=label, inline=True)
    embed.add_field(name="Trainer", value=user_mention or f"<@{job.user_id}>", inline=True)
    price = job.final_cost or job.price_charged or job.price_quoted or job.price_estimate
    if price is not None:
        suffix = " (simulated)" if job.simulated else ""
        embed.add_field(name="Price", value=f"{price:,.0f} Buzz{suffix}", inline=True)
    embed.add_field(
        name="Settings",
        value=(
            f"{params.get('steps')} steps · {params.get('epochs')} epochs · lr {params.get('lr')} · "
            f"dim {params.get('network_dim')}/{params.get('network_alpha')} · {job.image_count} images"
        )[:1024],
        inline=False,
    )
    if job.status.active or job.status is JobStatus.SUCCEEDED:
        epochs = params.get("epochs")
        done = f" · epoch {epochs_done}/{epochs}" if epochs_done is not None and epochs else ""
        fraction = 1.0 if job.status is JobStatus.SUCCEEDED else job.progress
        embed.add_field(name="Progress", value=progress_bar(fraction) + done, inline=False)
    if job.status.active:
        queue, eta = _queue_and_eta(job.last_state)
        # Once training has started the queue is behind it; only the ETA still matters.
        if queue and job.status is not JobStatus.PROCESSING:
            embed.add_field(name="Queue", value=queue, inline=True)
        if eta:
            embed.add_field(name="ETA", value=eta, inline=True)
    if job.status is JobStatus.LOST:
        lost = explain_lost(job.end_reason, simulated=job.simulated, charged=job.price_charged)
        embed.add_field(name="What happened", value=f"{lost.headline}. {lost.fix}"[:1024], inline=False)
    footer = f"Job {job.id}"
    if job.workflow_id:
        footer += f" · workflow {job.workflow_id}"
    if job.simulated:
        footer += " · SIMULATED: no Buzz spent, results are generated"
    embed.set_footer(text=footer[:2048])
    return embed
