"""SQLite storage: the only package that contains SQL.

``Store.open(path)`` connects (WAL, foreign keys), applies the numbered migrations in
``storage/migrations`` and returns the store; repositories hang off it (``store.guilds``,
``store.users``, ``store.jobs``, ``store.events``, ``store.epochs``, ``store.deliveries``,
``store.audit``, ``store.ledger``) and return the typed records of ``storage.models``.
"""

from storage.store import Store

__all__ = ["Store"]
