"""An in-process fake of the Civitai orchestrator (consumer API v2) for tests and simulated mode.

It speaks HTTP/JSON like the real service (see ``/work/shared/civitai-api.md``): workflows with
whatif pricing and Buzz charges, a training lifecycle in accelerated simulated time, epochs with
sample images and ``.safetensors`` models behind signed expiring URLs, callbacks, and fault
injection. No Discord here.
"""

from bot.civitai.simulator.faults import Faults
from bot.civitai.simulator.lifecycle import Timings
from bot.civitai.simulator.server import Simulator

__all__ = ["Faults", "Simulator", "Timings"]
