"""Lenient parsing of what the orchestrator answers, and the helpers built on it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.civitai import models as m
from bot.civitai.pricing import price_from_workflow


def _epoch(number: int, available: bool, samples: int = 0) -> dict[str, Any]:
    return {
        "epochNumber": number,
        "model": {"type": "model", "id": f"model-{number}", "available": available},
        "samples": [
            {"type": "image", "id": f"s{number}-{i}", "available": True, "url": f"https://blobs.example/s{i}.png"}
            for i in range(samples)
        ],
    }


WORKFLOW: dict[str, Any] = {
    "id": "wf-1",
    "status": "hibernating",  # unknown status
    "createdAt": "2025-01-02T03:04:05.123Z",
    "startedAt": "not a date",
    "brandNewField": {"nested": [1, 2]},
    "externalId": "user-job-1",
    "tags": ["lora-trainer-bot"],
    "cost": {"base": 2000, "tips": {"civitai": 0, "creators": 0}, "total": 2000, "novel": True},
    "transactions": {"list": [{"type": "debit", "amount": 2000, "accountType": "yellow"}], "insufficientBuzz": False},
    "steps": [
        {
            "$type": "training",
            "name": "0",
            "status": "processing",
            "priority": "normal",
            "estimatedProgressRate": 0.25,
            "jobs": [
                {"id": "j1", "status": "processing", "queuePosition": {"support": "available", "precedingJobs": 3}},
                {"id": "j0", "status": "failed", "reason": "no_provider_available"},
            ],
            "input": {"engine": "ai-toolkit", "steps": 2000},
            "output": {
                "moderationStatus": "UnderReview",
                "epochs": [_epoch(2, True, samples=2), _epoch(1, True, samples=1), _epoch(3, False)],
                "somethingElse": 1,
            },
            "futureField": "kept",
        }
    ],
}


def test_a_workflow_with_unknown_fields_and_values_parses_and_keeps_them(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.civitai.models"):
        workflow = m.Workflow.model_validate(WORKFLOW)
        m.Workflow.model_validate(WORKFLOW)
    assert workflow.status == "hibernating" and not workflow.terminal
    assert workflow.model_extra == {"brandNewField": {"nested": [1, 2]}}
    assert workflow.started_at is None and workflow.created_at is not None
    step = workflow.training_step()
    assert step is not None and step.model_extra == {"futureField": "kept"}
    unknown = [r for r in caplog.records if "hibernating" in r.getMessage()]
    assert len(unknown) == 1, "an unknown value is logged once, not at every parse"
    assert any("not a date" in r.getMessage() for r in caplog.records)


def test_available_epochs_in_order_with_their_airs() -> None:
    workflow = m.Workflow.model_validate(WORKFLOW)
    epochs = workflow.available_epochs()
    assert [e.epoch_number for e in epochs] == [1, 2]
    assert epochs[0].air == "urn:air:flux1:lora:orchestrator:blob@model-1"
    assert [len(e.samples) for e in epochs] == [1, 2]
    assert epochs[1].samples[0].air == "urn:air:other:other:orchestrator:blob@s2-0"


def test_moderation_status_is_compared_case_insensitively() -> None:
    output = m.Workflow.model_validate(WORKFLOW).training_output()
    assert output is not None
    assert output.under_review and output.moderation_is("underReview") and not output.rejected
    assert m.TrainingOutput.model_validate({"moderationStatus": "REJECTED", "epochs": []}).rejected


def test_queue_position_falls_back_to_the_older_jobs_shape_and_reasons_are_collected() -> None:
    step = m.Workflow.model_validate(WORKFLOW).steps[0]
    position = step.current_queue_position()
    assert position is not None and position.preceding_jobs == 3
    assert step.failure_reasons() == ["no_provider_available"]
    newer = m.WorkflowStep.model_validate({"queuePosition": {"support": "available", "precedingJobs": 0}})
    assert newer.current_queue_position() == m.QueuePosition(support="available", preceding_jobs=0)


def test_cost_and_transactions() -> None:
    workflow = m.Workflow.model_validate(WORKFLOW)
    assert price_from_workflow(workflow) == 2000
    assert workflow.transactions is not None
    assert workflow.transactions.debited() == 2000 and workflow.transactions.insufficient_buzz is False


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("succeeded", True), ("failed", True), ("expired", True), ("canceled", True), ("Canceled", True),
     ("processing", False), ("preparing", False), ("scheduled", False), ("unassigned", False), (None, False)],
)  # fmt: skip
def test_is_terminal(status: str | None, terminal: bool) -> None:
    assert m.is_terminal(status) is terminal


@pytest.mark.parametrize(
    ("payload", "scope"),
    [
        ({"$type": "workflow", "workflowId": "w", "status": "processing", "timestamp": "2025-01-01T00:00:00Z"},
         "workflow"),
        ({"$type": "step", "workflowId": "w", "name": "0", "status": "succeeded"}, "step"),
        ({"$type": "job", "workflowId": "w", "stepName": "0", "jobId": "j", "status": "failed", "reason": "timeout"},
         "job"),
        ({"workflowId": "w", "stepName": "0", "jobId": "j", "status": "processing", "progress": 0.5}, "job"),
        ({"workflowId": "w", "status": "nebulous", "extra": 1}, "workflow"),
    ],
)  # fmt: skip
def test_callback_payloads_of_every_scope(payload: dict[str, Any], scope: str) -> None:
    event = m.CallbackEvent.model_validate(payload)
    assert event.scope == scope
    assert event.workflow_id == "w"


def test_problem_details_tolerate_a_single_message_per_field() -> None:
    problem = m.ProblemDetails.model_validate({"status": 400, "errors": {"steps": "too many"}, "traceId": "t"})
    assert problem.errors == {"steps": ["too many"]}
    assert problem.model_extra == {"traceId": "t"}


def test_missing_required_fields_degrade_to_unavailable_instead_of_failing() -> None:
    output = m.TrainingOutput.model_validate({"epochs": [{"model": {"available": True}}, _epoch(1, True)]})
    assert [e.epoch_number for e in output.available_epochs()] == [1]
