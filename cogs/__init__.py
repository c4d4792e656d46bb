"""Slash commands and views: thin translators between Discord and the core.

Every module listed in ``EXTENSIONS`` is a discord.py extension with an async ``setup``.
"""

EXTENSIONS = [
    "cogs.errors",
    "cogs.help",
    "cogs.confirmation_buttons",
    "cogs.train",
    "cogs.captions",
    "cogs.captions_edit",
    "cogs.dataset_check",
    "cogs.cost",
    "cogs.audit_log",
    "cogs.jobs",
    "cogs.account",
    "cogs.admin",
    "cogs.try_it",
    "cogs.generate",
    "cogs.votes",
    "cogs.job_posts",
]
