"""Generating images with trained epochs: Try it, Try again, Compare and /generate (the core)."""
