"""SQLite storage: the only package that contains SQL.

``Store.open(path)`` connects (WAL, foreign keys), applies the numbered migrations in
``storage/migrations`` and returns the store; repositories hang off it and return typed models.
"""

from storage.store import Store

__all__ = ["Store"]
