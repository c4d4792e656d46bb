"""Storage on SQLite or PostgreSQL: the only package that contains SQL.

``Store.open(target)`` (a SQLite path or ``sqlite:///…``, or ``postgresql://…``) connects,
applies the numbered migrations in ``storage/migrations`` and returns the store; repositories
hang off it (``store.guilds``, ``store.users``, ``store.jobs``, ``store.events``,
``store.epochs``, ``store.deliveries``, ``store.audit``, ``store.ledger``) and return the typed
records of ``storage.models``.
Queries and migrations are written once, in the SQL subset ``storage.dialect`` documents.
"""

from storage.store import Store

__all__ = ["Store"]
