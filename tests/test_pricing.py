from __future__ import annotations

import pytest

from bot.civitai.pricing import estimate_price, price_from_workflow


@pytest.mark.parametrize(
    ("steps", "epochs", "expected", "floored"),
    [(2000, 10, 2000, False), (1000, 10, 1600, True), (2000, 20, 2200, False), (10000, 20, 9400, False)],
)
def test_documented_examples(steps: int, epochs: int, expected: int, floored: bool) -> None:
    price = estimate_price(steps, epochs)
    assert price.training_buzz == expected
    assert price.floor_applied is floored
    assert price.total == expected


def test_samples_are_billed_on_top_and_listed() -> None:
    price = estimate_price(2000, 10, sample_prompts=2)
    assert price.sample_images == 20
    assert price.total == 2000 + price.samples_buzz > 2000
    assert any("sample images" in line for line in price.lines())


def test_price_from_workflow_reads_cost_total() -> None:
    assert price_from_workflow({"cost": {"base": 2000, "tips": 0, "total": 2040.4}}) == 2040
    assert price_from_workflow({"status": "unassigned"}) is None
