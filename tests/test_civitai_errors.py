"""problem+json and HTTP statuses → typed errors with messages a member can act on."""

from __future__ import annotations

import pytest

from bot.civitai import errors as e
from bot.civitai.models import ProblemDetails
from bot.errors import UserFacingError


@pytest.mark.parametrize(
    ("path", "option"),
    [
        ("steps[0].input.networkDim", "network_dim"),
        ("$.steps[0].input.networkAlpha", "network_alpha"),
        ("Steps[0].Input.NetworkDim", "network_dim"),
        ("steps[0].input.optimizerType", "optimizer"),
        ("steps[0].input.samples.prompts[3]", "sample_prompts"),
        ("steps[0].input.samples.cfgScale", "sample_cfg"),
        ("steps[0].input.trainingData.sourceUrl", "dataset"),
        ("steps[0].input.trainingData.items[2].air", "dataset"),
        ("steps[0].input.modelVariant", "variant"),
        ("steps[0].input.continueFrom", "continue_from"),
        ("steps[0].input.someNewField", "someNewField"),
        ("externalId", "externalId"),
        ("", "request"),
    ],
)
def test_api_paths_map_back_to_option_names(path: str, option: str) -> None:
    assert e.option_for_api_path(path) == option


def test_a_validation_problem_becomes_per_option_messages() -> None:
    problem = ProblemDetails.model_validate(
        {
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "errors": {
                "steps[0].input.networkDim": ["networkDim must be between 1 and 256."],
                "steps[0].input.steps": ["steps out of range"],
                "steps[0].input.trainingData.sourceUrl": ["trainingData.sourceUrl not reachable"],
            },
        }
    )
    error = e.OrchestratorValidationError.from_problem(problem)
    assert isinstance(error, UserFacingError)
    assert error.field_errors == {
        "network_dim": ["network_dim must be between 1 and 256."],
        "steps": ["steps out of range"],
        "dataset": ["trainingData.sourceUrl not reachable"],
    }
    assert "• network_dim: network_dim must be between 1 and 256." in error.user_message
    assert "use at most 10000 steps" in error.user_message
    assert "submit again" in error.user_message


def test_insufficient_buzz_carries_the_price() -> None:
    error = e.InsufficientBuzz(price=2200, detail="Insufficient buzz")
    assert error.price == 2200
    assert "2,200 Buzz" in error.user_message and "Insufficient buzz" in error.user_message


def test_messages_never_echo_a_registered_secret() -> None:
    from bot.logging_setup import register_secret

    token = "civitai-secret-token-123456"
    register_secret(token)
    for error in (
        e.InsufficientBuzz(detail=f"token {token} has no buzz"),
        e.Conflict(f"bearer {token}"),
        e.OrchestratorRequestError(418, f"Authorization: Bearer {token}"),
        e.OrchestratorValidationError.from_problem(ProblemDetails(errors={"steps[0].input.lr": [token]})),
    ):
        assert token not in error.user_message and token not in str(error)


@pytest.mark.parametrize(
    ("path", "option"),
    [
        ("trainingData.sourceUrl", "dataset"),  # the form Civitai's troubleshooting table quotes
        ("TrainingData.SourceUrl", "dataset"),
        ("input.trainingData.sourceUrl", "dataset"),
        ("$.input.networkDim", "network_dim"),
        ("networkDim", "network_dim"),
        ("samples.prompts[1]", "sample_prompts"),
        ("modelVariant", "variant"),
        ("tags[3]", "tags[3]"),  # workflow-level keys stay what they are
        ("steps", "steps"),
        ("callbacks[0].url", "callbacks[0].url"),
    ],
)
def test_field_keys_without_the_step_prefix_map_to_options(path: str, option: str) -> None:
    assert e.option_for_api_path(path) == option


@pytest.mark.parametrize(
    ("detail", "option"),
    [
        ("trainingData.sourceUrl not reachable", "dataset"),
        ("modelVariant required", "variant"),
        ("steps out of range", "steps"),
        ("The field networkDim must be between 1 and 256.", "network_dim"),
    ],
)
def test_a_400_with_only_a_detail_naming_a_field_is_that_fields_error(detail: str, option: str) -> None:
    problem = ProblemDetails.model_validate({"title": "Bad Request", "status": 400, "detail": detail})
    error = e.OrchestratorValidationError.from_problem(problem)
    assert list(error.field_errors) == [option]
    assert error.refuses_dataset == (option == "dataset")


def test_a_detail_naming_no_field_stays_a_plain_refusal() -> None:
    problem = ProblemDetails.model_validate({"status": 400, "detail": "Something else went wrong."})
    assert e.OrchestratorValidationError.from_problem(problem).field_errors == {}
