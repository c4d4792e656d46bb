"""Fixtures shared by every test folder."""

# The stage (a fake Discord the real bot connects to): stage, bot_on_stage, bot_process, alice…
pytest_plugins = ["tests.stage.fixtures"]
