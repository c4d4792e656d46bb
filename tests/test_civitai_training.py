"""Local checks of the training options and the request body they produce."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.civitai import models as m
from bot.civitai.errors import TrainingInputError
from bot.civitai.training import TrainingOptions, build_training_input, training_workflow

ZIP = m.ZipTrainingData(source_url="https://bot.example/datasets/abc/x7.zip", count=12)

# (option, bad value, text the message must contain: the allowed range or choices)
OUT_OF_RANGE = [
    ("steps", 0, "between 1 and 10000"),
    ("steps", 10001, "between 1 and 10000"),
    ("steps", 20000, "between 1 and 10000"),
    ("steps", 1.5, "whole number between 1 and 10000"),
    ("steps", True, "whole number between 1 and 10000"),
    ("epochs", 0, "between 1 and 20"),
    ("epochs", 21, "between 1 and 20"),
    ("lr", 0, "greater than 0 and at most 1"),
    ("lr", -0.001, "greater than 0 and at most 1"),
    ("lr", 1.5, "greater than 0 and at most 1"),
    ("lr", float("nan"), "greater than 0 and at most 1"),
    ("network_dim", 0, "between 1 and 256"),
    ("network_dim", 257, "between 1 and 256"),
    ("network_alpha", 0, "between 1 and 256"),
    ("network_alpha", 300, "between 1 and 256"),
    ("noise_offset", -0.1, "at least 0 and at most 1"),
    ("noise_offset", 1.01, "at least 0 and at most 1"),
    ("keep_tokens", -1, "between 0 and 10"),
    ("keep_tokens", 11, "between 0 and 10"),
    ("lr_scheduler", "cyclic", "constant, constant_with_warmup, cosine, linear, step"),
    ("optimizer", "sgd", "adamw, adamw8bit, adam8bit, lion, lion8bit, adafactor, adagrad, prodigy"),
    ("variant", "pro", "dev, schnell"),
    ("flip_augmentation", "yes", "true or false"),
    ("shuffle_tokens", 1, "true or false"),
    ("train_text_encoder", "no", "true or false"),
    ("sample_cfg", -1, "at least 0 and at most 30"),
    ("sample_strength", 2.5, "at least 0 and at most 2"),
    ("continue_from", "urn:air:sdxl:lora:civitai:101@202", "flux1 LoRA"),
    ("continue_from", "urn:air:flux1:checkpoint:civitai:1@2", "flux1 LoRA"),
    ("continue_from", "not an air", "flux1 LoRA"),
    ("sample_prompts", "|".join(f"p{i}" for i in range(11)), "at most 10 prompts"),
]


def _given(option: str, value: Any) -> str:
    if option == "sample_prompts":
        return "(you gave 11)"
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize(("option", "value", "rule"), OUT_OF_RANGE, ids=lambda v: str(v)[:20])
def test_every_out_of_range_option_is_refused_with_its_name_range_and_value(option: str, value: Any, rule: str) -> None:
    with pytest.raises(TrainingInputError) as caught:
        build_training_input(ZIP, **{option: value})
    error = caught.value
    assert list(error.field_errors) == [option]
    (message,) = error.field_errors[option]
    assert message.startswith(option)
    assert rule in message
    assert _given(option, value) in message
    assert message in error.user_message


def test_the_example_message_reads_as_promised() -> None:
    with pytest.raises(TrainingInputError) as caught:
        TrainingOptions.from_user(steps=20000)
    assert caught.value.field_errors == {"steps": ["steps must be between 1 and 10000 (you gave 20000)"]}


def test_several_errors_are_all_reported_in_option_order() -> None:
    with pytest.raises(TrainingInputError) as caught:
        TrainingOptions.from_user(network_dim=999, steps=0, optimizer="sgd", lr=2)
    assert list(caught.value.field_errors) == ["steps", "lr", "network_dim", "optimizer"]
    assert caught.value.user_message.count("•") == 4


def test_continue_from_of_another_ecosystem_says_why() -> None:
    with pytest.raises(TrainingInputError) as caught:
        TrainingOptions.from_user(continue_from="urn:air:sdxl:lora:civitai:101@202")
    (message,) = caught.value.field_errors["continue_from"]
    assert "sdxl" in message and "cannot be trained further on Flux.1" in message


@pytest.mark.parametrize(
    "options",
    [
        {"steps": 1, "epochs": 1, "network_dim": 1, "network_alpha": 1, "noise_offset": 0, "keep_tokens": 0},
        {"steps": 10000, "epochs": 20, "network_dim": 256, "network_alpha": 256, "noise_offset": 1, "keep_tokens": 10},
        {"lr": 1, "continue_from": "urn:air:flux1:lora:orchestrator:blob@abc_1-2"},
    ],
)
def test_bounds_are_accepted(options: dict[str, Any]) -> None:
    built = build_training_input(ZIP, **options)
    for name, value in options.items():
        assert getattr(built, name) == value


@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_defaults_match_the_documented_table(variant: str) -> None:
    built = build_training_input(ZIP, variant=variant)
    assert built.model_variant == variant
    assert (built.engine, built.ecosystem) == ("ai-toolkit", "flux1")
    assert (built.steps, built.epochs, built.batch_size, built.lr) == (2000, 10, 1, 0.0001)
    assert (built.lr_scheduler, built.optimizer_type) == ("cosine", "adamw8bit")
    assert (built.network_dim, built.network_alpha) == (16, 16)
    assert (built.noise_offset, built.keep_tokens) == (0, 0)
    assert not (built.train_text_encoder or built.flip_augmentation or built.shuffle_tokens)
    assert built.trigger_word is None and built.continue_from is None
    assert built.samples.prompts == []


def test_variant_defaults_to_dev_and_alpha_follows_dim() -> None:
    built = build_training_input(ZIP, network_dim=32)
    assert built.model_variant == "dev"
    assert built.network_alpha == 32
    assert build_training_input(ZIP, network_dim=32, network_alpha=8).network_alpha == 8


@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_default_body_has_no_resolution_and_no_nulls(variant: str) -> None:
    body = training_workflow(build_training_input(ZIP, variant=variant), external_id="job-42").to_json()
    step = body["steps"][0]
    assert step["$type"] == "training"
    assert (step["priority"], step["retries"]) == ("normal", 2)
    assert body["externalId"] == "job-42"
    sent = step["input"]
    assert "resolution" not in sent
    assert sent["steps"] == 2000  # always sent: without it the legacy per-epoch price applies
    assert sent["networkAlpha"] == 16

    def no_none(value: Any) -> bool:
        if isinstance(value, dict):
            return all(v is not None and no_none(v) for v in value.values())
        if isinstance(value, list):
            return all(no_none(v) for v in value)
        return True

    assert no_none(body)
    assert "currencies" not in body and "trace" not in sent and "callbacks" not in body


def test_prompts_split_on_bars_and_round_trip_through_storage() -> None:
    options = TrainingOptions.from_user(sample_prompts=" a cat | | a dog ", negative_prompt="  ", trigger_word=" tok ")
    assert options.sample_prompts == ("a cat", "a dog")
    assert options.negative_prompt is None and options.trigger_word == "tok"
    assert TrainingOptions.from_user(**options.as_dict()) == options
    sent = options.to_training_input(ZIP).to_json()
    assert sent["samples"] == {"prompts": ["a cat", "a dog"]}
    assert sent["triggerWord"] == "tok"


def test_a_servers_own_caps_are_tighter_and_say_so() -> None:
    with pytest.raises(TrainingInputError) as caught:
        TrainingOptions.from_user(steps=6000, epochs=12, max_steps=5000, max_epochs=12)
    assert caught.value.field_errors == {"steps": ["steps must be between 1 and 5000 on this server (you gave 6000)"]}


def test_warnings_for_allowed_but_risky_choices() -> None:
    assert TrainingOptions.from_user().warnings() == []
    warnings = TrainingOptions.from_user(lr=0.001, keep_tokens=2).warnings()
    assert any("0.0005" in w for w in warnings) and any("shuffle_tokens" in w for w in warnings)


def test_the_models_refuse_out_of_range_values_even_when_built_directly() -> None:
    for bad in ({"steps": 20000}, {"network_dim": 0}, {"epochs": 21}, {"batch_size": 2}, {"resolution": 512}):
        with pytest.raises(ValidationError):
            m.Flux1TrainingInput(model_variant="dev", training_data=ZIP, **bad)


@pytest.mark.parametrize(
    "url",
    [
        "https://bot.example:8443/datasets/x.zip",
        "https://bot.example/datasets/x.zip?sig=abc",
        "https://bot.example/a b.zip",
    ],
)
def test_zip_urls_must_match_the_air_pattern(url: str) -> None:
    with pytest.raises(ValidationError, match="AIR pattern"):
        m.ZipTrainingData(source_url=url, count=3)


def test_template_limits_on_tags_and_external_id() -> None:
    step = m.TrainingStepTemplate(input=build_training_input(ZIP))
    m.WorkflowTemplate(steps=[step], tags=[f"t{i}" for i in range(10)], external_id="a" * 128)
    for bad in (
        {"tags": [f"t{i}" for i in range(11)]},
        {"tags": ["x" * 201]},
        {"tags": ["a", "a"]},
        {"external_id": "a" * 129},
        {"external_id": "has space"},
        {"external_id": ""},
    ):
        with pytest.raises(ValidationError):
            m.WorkflowTemplate(steps=[step], **bad)
