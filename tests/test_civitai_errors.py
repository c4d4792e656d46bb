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
