"""Everything about the Civitai orchestrator: models, client, pricing and the simulator."""
