"""Durable state of a deployment: SQLite for one gateway, PostgreSQL for many."""
