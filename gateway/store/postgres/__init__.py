"""The PostgreSQL store: one schema shared by several gateway replicas."""

from gateway.store.postgres.store import MIGRATIONS, PostgresStore

__all__ = ["MIGRATIONS", "PostgresStore"]
