"""imageGen in the simulator over real sockets: requests built by hand from civitai-api.md and
checked against the spec both ways; deterministic images that differ by epoch and by strength;
an expired model, bad fields and a short account refused as the orchestrator would."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image, ImageChops

from bot.civitai.simulator import Simulator
from bot.civitai.simulator.image_gen import expire_model
from tests.simulator.conftest import Api, epochs_of, training_body

AIR = "urn:air:flux1:lora:orchestrator:blob@{}"
MODELS = {
    "diffuserModel": "urn:air:flux1:checkpoint:civitai:618692@691639",
    "clipLModel": "urn:air:flux1:clip:civitai:1@2",
    "t5XXLModel": "urn:air:flux1:clip:civitai:1@3",
    "vaeModel": "urn:air:flux1:vae:civitai:1@4",
}


def image_gen_body(loras: list[dict[str, float]], *, seed: int = 7, quantity: int = 1, **fields: Any) -> dict[str, Any]:
    steps = [
        {"$type": "imageGen", "input": {"engine": "sdcpp", "ecosystem": "flux1", "operation": "createImage",
                                        "prompt": "sks dog on a beach", "seed": seed, "quantity": quantity,
                                        "loras": column, **MODELS, **fields}}
        for column in loras
    ]  # fmt: skip
    return {"steps": steps}


async def trained_models(api: Api) -> list[str]:
    submitted = await api.submit(training_body(epochs=3))
    workflow = await api.finished(submitted.json()["id"])
    return [epoch["model"]["id"] for epoch in epochs_of(workflow)]


async def images(workflow: dict[str, Any]) -> list[Image.Image]:
    out = []
    async with httpx.AsyncClient() as anonymous:
        for step in workflow["steps"]:
            for blob in step["output"]["images"]:
                data = (await anonymous.get(blob["url"])).content
                image = Image.open(io.BytesIO(data))
                assert image.size == (blob["width"], blob["height"])
                out.append(image.convert("RGB"))
    return out


def same(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a, b).getbbox() is None


async def test_images_are_deterministic_and_differ_by_epoch_and_strength(sim: Simulator, api: Api) -> None:
    models = await trained_models(api)
    columns = [
        {AIR.format(models[0]): 1.0},
        {AIR.format(models[2]): 1.0},
        {AIR.format(models[2]): 0.0},
        {},
        {AIR.format(models[2]): 1.0},
    ]
    body = image_gen_body(columns)
    priced = await api.submit(body, whatif="true")
    assert priced.status_code == 200 and priced.json()["cost"]["total"] > 0
    balance = sim.balance("sim-test-token")
    submitted = await api.submit(body)
    workflow = await api.get(submitted.json()["id"])
    assert workflow["status"] == "succeeded" and len(workflow["steps"]) == 5
    assert (
        sim.balance("sim-test-token") == balance - workflow["cost"]["total"] == balance - priced.json()["cost"]["total"]
    )
    epoch1, epoch3, strength0, base, epoch3_again = await images(workflow)
    assert not same(epoch1, epoch3), "epochs look different"
    assert not same(epoch3, strength0), "strength 1 and 0 look different"
    assert same(epoch3.crop((0, 0, 256, 150)), epoch3_again.crop((0, 0, 256, 150))), "same prompt, seed, epoch"
    assert same(strength0.crop((0, 0, 256, 150)), base.crop((0, 0, 256, 150))), "strength 0 is the base model"

    reseeded = await api.get((await api.submit(image_gen_body([columns[1]], seed=8))).json()["id"])
    assert not same((await images(reseeded))[0], epoch3), "another seed, another picture"


async def test_refusals_name_the_field(sim: Simulator, api: Api) -> None:
    models = await trained_models(api)
    expire_model(sim, models[0])
    gone = await api.submit(image_gen_body([{AIR.format(models[0]): 1.0}]))
    assert gone.status_code == 400 and "steps[0].input.loras" in gone.json()["errors"]
    wide = await api.client.post("/v2/consumer/workflows", json=image_gen_body([{}], width=2048))
    assert wide.status_code == 400 and "steps[0].input.width" in wide.json()["errors"]
    sim.add_account("poor", 1)
    poor = await api.client.post(
        "/v2/consumer/workflows", json=image_gen_body([{}], quantity=4), headers={"Authorization": "Bearer poor"}
    )
    assert poor.status_code == 403 and "Insufficient buzz" in poor.text
