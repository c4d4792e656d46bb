"""Who may see and act on which job.

A member sees and cancels only their own jobs; a server admin also sees and cancels every job
of their own server, never another server's. A job someone may not see is reported exactly
like a job that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from bot.errors import UserFacingError
from storage import Store
from storage.models import Job


class JobNotVisible(UserFacingError):
    def __init__(self, job_id: str, *, admin: bool = False) -> None:
        whose = "in this server" if admin else "of yours"
        super().__init__(
            f"There is no job {whose} with the id `{job_id[:40]}`. Pick one from the list while typing, "
            f"or see them all with {'`/admin jobs`' if admin else '`/jobs list`'}.",
            title="Unknown job",
        )


def may_manage(job: Job, *, user_id: int, guild_id: int | None, is_admin: bool) -> bool:
    """The owner, or an admin acting inside the job's own server."""
    return job.user_id == user_id or (is_admin and guild_id is not None and job.guild_id == guild_id)


async def visible_job(store: Store, job_id: str, *, user_id: int, guild_id: int | None, is_admin: bool) -> Job:
    job = await store.jobs.get(job_id.strip())
    if job is None or not may_manage(job, user_id=user_id, guild_id=guild_id, is_admin=is_admin):
        raise JobNotVisible(job_id.strip(), admin=is_admin)
    return job
