"""The stage: a fake Discord server (REST + gateway) that the real, unmodified bot connects to.

See README.md beside this file for how it works and how to write an end-to-end test.
"""

from tests.stage.driver import InteractionHandle, StageMember
from tests.stage.interactions import Attachment, Modal, StageError
from tests.stage.model import Channel, Message, StoredFile
from tests.stage.server import FailedInteraction, Stage, StageTimeout
from tests.stage.violations import Violation
from tests.stage.world import GuildSpec, MemberSpec, StageConfig

__all__ = [
    "Attachment",
    "Channel",
    "FailedInteraction",
    "GuildSpec",
    "InteractionHandle",
    "MemberSpec",
    "Message",
    "Modal",
    "Stage",
    "StageConfig",
    "StageError",
    "StageMember",
    "StageTimeout",
    "StoredFile",
    "Violation",
]
