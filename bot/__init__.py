"""LoRA Trainer Bot: train Flux.1 LoRAs on Civitai from Discord.

Layout: the core (dataset intake, pricing, orchestrator client, job tracking) lives in this
package and knows nothing of Discord; ``bot.app`` is the one place that wires the core to
discord.py; ``cogs`` hold the slash commands and views; ``storage`` holds all SQL.
"""

__version__ = "0.1.0"
