"""Fixtures shared by every test folder."""

from collections.abc import Iterator

import pytest
from PIL import Image

# The stage (a fake Discord the real bot connects to): stage, bot_on_stage, bot_process, alice…
pytest_plugins = ["tests.stage.fixtures"]


@pytest.fixture(autouse=True)
def pillow_bomb_limit() -> Iterator[None]:
    """A dataset check sets Pillow's process-wide bomb limit from its settings (a process runs
    with one setting); give each test Pillow's limit back, whatever the previous test checked."""
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved
