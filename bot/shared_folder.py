"""Whether the processes of a sharded bot share one datasets folder (DATASETS_DIR).

A hosted dataset link can reach any process (a load balancer in front of them), so each must
find every normalised dataset. Each process leaves a marker named for its shards in the folder
when it starts (and when ``doctor`` runs); ``doctor`` writes its own, reads it back, and lists
the other processes' markers it sees. Markers are not ``.zip`` files: retention leaves them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings

MARKER_PREFIX = ".process-shards-"


def shards_name(settings: Settings) -> str:
    scope = settings.shard_scope
    return "all" if scope is None else "-".join(str(i) for i in sorted(scope.ids))


def marker_path(settings: Settings) -> Path:
    return settings.datasets_path / f"{MARKER_PREFIX}{shards_name(settings)}"


def leave_marker(settings: Settings) -> Path:
    """Write this process's marker (its host name: where it runs); raises OSError when the
    folder cannot be written."""
    path = marker_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(socket.gethostname() + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class FolderView:
    readable: bool  # this process's marker reads back as written
    others: list[str]  # the shards of the other processes whose markers are there


def look(settings: Settings) -> FolderView:
    """Write this process's marker, read it back, and list the other processes' markers."""
    path = leave_marker(settings)
    readable = path.read_text(encoding="utf-8").strip() == socket.gethostname()
    others = sorted(
        p.name.removeprefix(MARKER_PREFIX) for p in settings.datasets_path.glob(f"{MARKER_PREFIX}*") if p != path
    )
    return FolderView(readable, others)
