"""The spec validator itself: the documented requests pass, deliberately bad ones do not."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.civitai_spec import compiled_schema, validate_request, validate_response


def default_request(variant: str = "dev") -> dict[str, Any]:
    """The default flux1 training request of civitai-api.md (defaults spelled out)."""
    return {
        "steps": [{
            "$type": "training",
            "priority": "normal",
            "retries": 2,
            "input": {
                "engine": "ai-toolkit", "ecosystem": "flux1", "modelVariant": variant,
                "trainingData": {"type": "zip", "sourceUrl": "https://bot.example.com/datasets/d1/1700000000/s1g/dataset.zip",
                                 "count": 12},
                "steps": 2000, "epochs": 10, "batchSize": 1, "lr": 0.0001, "trainTextEncoder": False,
                "lrScheduler": "cosine", "optimizerType": "adamw8bit", "networkDim": 16, "networkAlpha": 16,
                "noiseOffset": 0, "flipAugmentation": False, "shuffleTokens": False, "keepTokens": 0,
                "triggerWord": "sks", "samples": {"prompts": ["a photo of sks"]},
            },
        }],
        "callbacks": [
            {"url": "https://bot.example.com/hooks/civitai/1/secret", "type": ["workflow:*"], "detailed": False},
        ],
        "tags": ["lora-trainer-bot"],
        "externalId": "job-1",
    }


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    body = default_request()
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_documented_default_request_is_accepted(variant: str) -> None:
    assert validate_request("WorkflowTemplate", default_request(variant)) == []


def test_blobs_training_data_is_accepted() -> None:
    body = _with(["steps", 0, "input", "trainingData"],
                 {"type": "blobs", "items": [{"air": "urn:air:other:other:orchestrator:blob@abc", "caption": "sks"}]})
    assert validate_request("WorkflowTemplate", body) == []


INPUT = ["steps", 0, "input"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ([*INPUT, "engine"], "kohya", "steps[0].input.engine"),
        ([*INPUT, "modelVariant"], "pro", "steps[0].input.modelVariant"),
        ([*INPUT, "steps"], "2000", "steps[0].input.steps"),
        ([*INPUT, "networkDim"], 512, "steps[0].input.networkDim"),
        ([*INPUT, "resolution"], 1024, "'resolution' was unexpected"),
        ([*INPUT, "trainingData", "sourceUrl"], "https://bot.example.com:8443/d.zip", "trainingData.sourceUrl"),
        (["tags"], [f"t{i}" for i in range(11)], "tags"),
        (["externalId"], "has spaces", "externalId"),
    ],
)
def test_bad_request_is_rejected_naming_the_field(path: list[Any], value: Any, expected: str) -> None:
    errors = validate_request("WorkflowTemplate", _with(path, value))
    assert errors and any(expected in e for e in errors), errors


def test_missing_variant_is_rejected() -> None:
    body = default_request()
    del body["steps"][0]["input"]["modelVariant"]
    assert validate_request("WorkflowTemplate", body)


def test_read_only_fields_are_required_in_responses_only() -> None:
    """Rule 4: requests need not send storageBuzzPerEpoch etc.; a server response must carry them."""
    step = copy.deepcopy(default_request()["steps"][0])
    step.update(name="0", status="processing", metadata={})
    workflow = {
        "id": "wf-1", "createdAt": "2025-01-01T00:00:00Z", "metadata": {}, "status": "processing", "tags": [],
        "arguments": {}, "steps": [step], "callbacks": [], "tips": {"civitai": 0, "creators": 0},
        "cost": {"base": 2000, "tips": {"civitai": 0, "creators": 0}, "total": 2000}, "upgradeMode": "manual",
        "currencies": ["yellow"], "forceRefunded": False,
    }
    errors = validate_response("Workflow", workflow)
    assert any("storageBuzzPerEpoch" in e for e in errors), errors
    step["input"].update(storageBuzzPerEpoch=20, defaultSteps=2000, usesStepPricing=True, maxBatchSize=1,
                         requiresAgeClassification=False, trace="none")
    assert validate_response("Workflow", workflow) == []
    workflow["status"] = "pending"  # not a real status
    assert any(e.startswith("status:") for e in validate_response("Workflow", workflow))


@pytest.mark.parametrize("name", ["Flux1DevAIToolkitTrainingInput", "TrainingOutput", "Blob"])
def test_compiled_schemas_are_valid_json_schema(name: str) -> None:
    for for_request in (True, False):
        schema = compiled_schema(name, for_request)
        Draft202012Validator.check_schema(schema)
        assert "(?<" not in str(schema), "a .NET named group survived"
