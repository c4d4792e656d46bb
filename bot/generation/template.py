"""The ``imageGen`` workflow of a generation: one flux1 sd.cpp ``createImage`` step per column.

Request models are strict (``extra="forbid"``) like the training ones, so a typo fails here
and not at Civitai; tests validate the JSON against ``Flux1SdCppImageGenInput``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from bot.civitai import models as m
from bot.generation.options import MAX_PROMPT, MAX_QUANTITY, GenerationOptions

WORKFLOW_TAG = "lora-trainer-bot-generation"

# The Flux.1 components sd.cpp loads (Civitai's published model versions). The document makes
# all four required; the diffuser follows the run's variant.
DIFFUSER_MODELS = {
    "dev": "urn:air:flux1:checkpoint:civitai:618692@691639",
    "schnell": "urn:air:flux1:checkpoint:civitai:618692@699279",
}
CLIP_L_MODEL = "urn:air:flux1:clip:huggingface:comfyanonymous/flux_text_encoders@main/clip_l.safetensors"
T5XXL_MODEL = "urn:air:flux1:clip:huggingface:comfyanonymous/flux_text_encoders@main/t5xxl_fp8_e4m3fn.safetensors"
VAE_MODEL = "urn:air:flux1:vae:civitai:618692@691639"
# Sampling the variant was distilled for: dev 28 steps at cfg 3.5, schnell 4 steps at cfg 1.
SAMPLING = {"dev": (28, 3.5), "schnell": (4, 1.0)}


class Flux1ImageGenInput(m._Request):
    engine: Literal["sdcpp"] = "sdcpp"
    ecosystem: Literal["flux1"] = "flux1"
    operation: Literal["createImage"] = "createImage"
    prompt: str = Field(max_length=MAX_PROMPT)
    negative_prompt: str | None = None
    width: int = Field(ge=832, le=1216)
    height: int = Field(ge=832, le=1216)
    seed: int | None = Field(default=None, ge=0)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    cfg_scale: float = Field(ge=1, le=20)
    steps: int = Field(ge=4, le=50)
    loras: dict[str, float] | None = None
    diffuser_model: str
    clip_l_model: str = Field(alias="clipLModel")
    t5_xxl_model: str = Field(alias="t5XXLModel")
    vae_model: str


class ImageGenStepTemplate(m._Request):
    step_type: Literal["imageGen"] = Field(default="imageGen", alias="$type")
    name: str | None = None
    priority: Literal["high", "normal", "low"] | None = "normal"
    input: Flux1ImageGenInput


class ImageGenWorkflowTemplate(m.WorkflowTemplate):
    """A workflow template whose steps generate images (the client submits any template)."""

    steps: list[ImageGenStepTemplate] = Field(min_length=1)  # type: ignore[assignment]


def build_template(
    options: GenerationOptions, *, external_id: str | None, generation_id: str | None
) -> ImageGenWorkflowTemplate:
    width, height = options.size.dimensions
    steps, cfg = SAMPLING.get(options.variant, SAMPLING["dev"])
    step_templates = [
        ImageGenStepTemplate(
            name=f"column{i}",
            input=Flux1ImageGenInput(
                prompt=options.prompt,
                negative_prompt=options.negative_prompt,
                width=width,
                height=height,
                seed=options.seed,
                quantity=options.quantity,
                cfg_scale=cfg,
                steps=steps,
                loras=dict(column.loras) or None,
                diffuser_model=DIFFUSER_MODELS.get(options.variant, DIFFUSER_MODELS["dev"]),
                clipLModel=CLIP_L_MODEL,
                t5XXLModel=T5XXL_MODEL,
                vae_model=VAE_MODEL,
            ),
        )
        for i, column in enumerate(options.columns)
    ]
    tags = [WORKFLOW_TAG] + ([f"gen-{generation_id}"] if generation_id else [])
    return ImageGenWorkflowTemplate(steps=step_templates, tags=tags, external_id=external_id)


def step_images(workflow: m.Workflow) -> list[list[m.Blob]]:
    """The image blobs of each imageGen step, in step order."""
    out: list[list[m.Blob]] = []
    for step in workflow.steps:
        if step.step_type != "imageGen":
            continue
        extra: dict[str, Any] = (step.output.model_extra or {}) if step.output is not None else {}
        out.append([m.Blob.model_validate(raw) for raw in extra.get("images") or []])
    return out
