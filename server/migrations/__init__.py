"""Alembic migrations that own Ferry's schema (batch mode on SQLite)."""
