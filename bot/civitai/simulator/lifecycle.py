"""A workflow's life in simulated time: unassigned → preparing (dataset fetch, moderation) →
scheduled → processing (epochs become available one by one) → succeeded, or a failure, expiry or
cancel on the way. Terminal statuses never change.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.civitai.simulator.artifacts import SAMPLE_SIZE, build_safetensors, render_sample
from bot.civitai.simulator.callbacks import progress_event, step_event
from bot.civitai.simulator.dataset import THUMBNAILS, DatasetError, fetch_zip, route_url, thumbnails
from bot.civitai.simulator.state import WorkflowRecord

if TYPE_CHECKING:
    from bot.civitai.simulator.server import Simulator

log = logging.getLogger(__name__)


@dataclass
class Timings:
    """Simulated seconds each stage takes (divided by ``speed`` in real time)."""

    unassigned: float = 2.0  # before a worker pool takes the workflow
    preparing: float = 10.0  # dataset download and moderation
    scheduled: float = 30.0  # waiting for a GPU, the queue shrinking
    per_step: float = 1.5  # one training step
    per_sample: float = 4.0  # one sample image at each epoch

    def training(self, steps: int, epochs: int, prompts: int) -> float:
        return steps * self.per_step + epochs * prompts * self.per_sample


class Run:
    """Drives one workflow; ``idle`` tells ``Simulator.settle`` it is only waiting for time.

    Every wait is for an instant kept in the record (``since``, ``ready_at``, the epochs), so a
    run restored after a restart goes on where simulated time has taken it: what is already past
    happens at once, nothing that happened is done twice."""

    def __init__(self, sim: Simulator, rec: WorkflowRecord, catch_up_until: float = float("-inf")) -> None:
        self.sim, self.rec = sim, rec
        # A run restored after a restart replays what happened while no process ran it at the
        # planned instants; from the present on (and for a new run) changes happen when the
        # work behind them is done, as real work takes real time (a dataset fetch, say).
        self.catch_up_until = catch_up_until
        self._wake_at: float | None = None
        self._held = False

    def _when(self, planned: float) -> float:
        return planned if planned <= self.catch_up_until else self.sim.clock.now()

    @property
    def idle(self) -> bool:
        """Waiting for simulated time that has not come yet, or for a human review.

        Derived from the clock rather than flagged on wake-up, so ``advance`` followed by
        ``settle`` never mistakes a run that is about to resume for an idle one."""
        return self._held or (self._wake_at is not None and self._wake_at > self.sim.clock.now())

    async def _at(self, instant: float) -> None:
        self._wake_at = instant
        try:
            await self.sim.clock.sleep_until(instant)
        finally:
            self._wake_at = None

    async def __call__(self) -> None:
        try:
            await self._run()
        except DatasetError as exc:
            self.sim.finish(self.rec, "failed", str(exc))
        except Exception:  # a simulator bug must end the run visibly, not leave it hanging
            log.exception("simulated run %s crashed", self.rec.id)
            self.sim.finish(self.rec, "failed", "internal_error")

    async def _run(self) -> None:
        sim, rec, timings = self.sim, self.rec, self.sim.timings
        plan = rec.plan
        training = timings.training(plan.steps, plan.epochs, len(plan.prompts))
        if rec.status == "unassigned":
            await self._at(rec.since + timings.unassigned)
            rec.preceding_jobs = sim.queue_jobs
            rec.eta_start = sim.clock.wall_time_in(timings.preparing + timings.scheduled)
            rec.eta_complete = sim.clock.wall_time_in(timings.preparing + timings.scheduled + training)
            sim.set_status(rec, "preparing", at=self._when(rec.since + timings.unassigned))
        thumbs = await self._load_dataset()
        if rec.status == "preparing":
            if not await self._moderate():
                return
            assert rec.ready_at is not None
            await self._at(rec.ready_at)
            sim.set_status(rec, "scheduled", at=self._when(rec.ready_at))
        if rec.status == "scheduled":
            queued = rec.since + timings.scheduled
            await self._queue(timings.scheduled)
            if rec.faults.expire:
                sim.finish(rec, "expired", "expired", at=self._when(queued))
                return
            rec.preceding_jobs, rec.progress = 0, 0.0
            rec.eta_start, rec.eta_complete = sim.clock.wall_time_in(0), sim.clock.wall_time_in(training)
            sim.set_status(rec, "processing", at=self._when(queued))
        if rec.status == "processing":
            await self._train(thumbs)
            sim.finish(rec, "succeeded", at=self._when(rec.since + training))

    async def _queue(self, duration: float) -> None:
        """The queue ahead shrinks while scheduled (visible in ``queuePosition``, no events)."""
        slices = self.sim.queue_jobs + 1
        start = self.rec.since
        for i in range(1, slices + 1):
            await self._at(start + duration * i / slices)
            preceding = max(0, slices - 1 - i)
            if preceding != self.rec.preceding_jobs:
                self.rec.preceding_jobs = preceding
                self.rec.touch()

    async def _load_dataset(self) -> list[bytes]:
        """The dataset's thumbnails (small JPEGs): fetched once, then kept as blobs (a restored
        run reuses them)."""
        sim, rec = self.sim, self.rec
        plan = rec.plan
        if rec.thumb_blob_ids is None:
            data = plan.input["trainingData"]
            if data["type"] == "zip":
                sim.dataset_fetches.append(data["sourceUrl"])
                url = route_url(data["sourceUrl"], sim.host_routes)
                thumbs = await fetch_zip(sim.http_session(), url, data["count"])
                rec.thumb_blob_ids = [self._keep(thumb) for thumb in thumbs]
            else:
                rec.thumb_blob_ids = list(plan.blob_ids[:THUMBNAILS])
            rec.touch()
        images = [sim.blobs.read(blob_id) for blob_id in rec.thumb_blob_ids]
        return await asyncio.to_thread(thumbnails, images)  # decoding photos: off the loop

    def _keep(self, thumb: bytes) -> str:
        """Keep a thumbnail (a small JPEG) as a blob of the run's owner."""
        blob = self.sim.blobs.reserve(self.rec.owner, "thumbnail")
        return self.sim.blobs.fill(blob, thumb, "image/jpeg", "thumbnail.jpg").id

    async def _moderate(self) -> bool:
        rec = self.rec
        if rec.moderation == "approved":
            return True  # decided before a restart
        # Preparing lasts its time after the dataset was fetched (since it began, when replayed).
        preparing = self.sim.timings.preparing
        replayed = rec.since + preparing <= self.catch_up_until
        rec.ready_at = (rec.since if replayed else self.sim.clock.now()) + preparing
        held = rec.faults.moderation == "underReview"
        if held:
            # A human is called in after the dataset was looked at for a while, well after the
            # status turned ``preparing``: a receiver hears of the hold only through its event.
            await self._at(rec.since + self.sim.timings.preparing / 2)
            rec.review = asyncio.get_running_loop().create_future()
            if rec.moderation != "underReview":
                self._set_moderation("underReview", announce=True)
            self._held = True
            try:
                approved = await rec.review
            finally:
                self._held = False
            rec.faults.moderation = None if approved else "rejected"
            # Preparing goes on for a while after the human's decision.
            rec.ready_at = max(rec.ready_at, self.sim.clock.now() + self.sim.timings.preparing / 2)
        if rec.faults.moderation == "rejected":
            self._set_moderation("rejected", announce=False)  # the failure's events follow
            self.sim.finish(rec, "failed", "blocked")
            return False
        self._set_moderation("approved", announce=held)
        return True

    def _set_moderation(self, status: str, *, announce: bool) -> None:
        """Moderation moved on. A hold and its release change no status, so the orchestrator
        signals them with a step event; a receiver re-reads the workflow and sees the change."""
        self.rec.moderation = status
        self.rec.touch()
        if announce:
            self.sim.callbacks.emit(self.rec, [step_event(self.rec)])

    async def _train(self, thumbs: list[bytes]) -> None:
        sim, rec, timings = self.sim, self.rec, self.sim.timings
        plan = rec.plan
        start, samples_time = rec.since, len(plan.prompts) * timings.per_sample
        for epoch in rec.epochs:
            if epoch.available:
                continue  # produced before a restart
            k = epoch.number
            done, end = round((k - 1) * plan.steps / plan.epochs), round(k * plan.steps / plan.epochs)
            middle = (done + end) / 2
            halfway = start + middle * timings.per_step + (k - 1) * samples_time
            await self._at(halfway)
            self._progress(middle)
            if rec.faults.fail_at_epoch == k:
                sim.finish(rec, "failed", rec.faults.fail_reason, at=self._when(halfway))
                return
            await self._at(start + end * timings.per_step + k * samples_time)
            await self._produce(epoch.number, thumbs)
            epoch.available = True
            rec.eta_complete = sim.clock.wall_time_in(
                timings.training(plan.steps - end, plan.epochs - k, len(plan.prompts)))
            self._progress(end)

    def _progress(self, steps_done: float) -> None:
        self.rec.progress = round(steps_done / self.rec.plan.steps, 4)
        self.rec.touch()
        self.sim.callbacks.emit(self.rec, [progress_event(self.rec)])

    async def _produce(self, number: int, thumbs: list[bytes]) -> None:
        """Render the epoch's samples and model file off the event loop, then store them."""
        sim, rec = self.sim, self.rec
        plan, epoch = rec.plan, rec.epochs[number - 1]
        seed = f"{rec.id}:{number}"
        name = plan.input.get("triggerWord") or f"lora_{rec.id}"
        metadata = {
            "ss_output_name": name, "ss_epoch": str(number), "ss_total_epochs": str(plan.epochs),
            "ss_network_dim": str(plan.input["networkDim"]), "ss_network_alpha": str(plan.input["networkAlpha"]),
            "ss_base_model_version": f"flux1_{plan.input['modelVariant']}", "workflow_id": str(rec.id),
            "simulated": "true",
        }
        epoch.sample_blob_ids, epoch.sample_sizes = [], []  # a restored run may redo an epoch cut short
        model = await asyncio.to_thread(build_safetensors, metadata, plan.input["networkDim"], seed)
        samples = [
            await asyncio.to_thread(render_sample, thumbs[i % len(thumbs)] if thumbs else None, prompt, number,
                                    plan.epochs, f"{seed}:{i}")
            for i, prompt in enumerate(plan.prompts)
        ]
        model_blob = sim.blobs.get(epoch.model_blob_id)
        assert model_blob is not None, "model blobs are reserved when the workflow is created"
        sim.blobs.fill(model_blob, model, "application/octet-stream", f"{name}_epoch_{number:03d}.safetensors")
        for i, data in enumerate(samples):
            blob = sim.blobs.reserve(rec.owner, "image")
            sim.blobs.fill(blob, data, "image/jpeg", f"epoch_{number:03d}_sample_{i}.jpeg",
                           (SAMPLE_SIZE, SAMPLE_SIZE))
            epoch.sample_blob_ids.append(blob.id)
            epoch.sample_sizes.append(blob.size or (0, 0))
