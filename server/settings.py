"""Settings for both modes, from arguments and `FERRY_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["local", "server"]


def default_data_dir(mode: Mode) -> Path:
    name = "ferry" if mode == "local" else "ferry-server"
    return Path(platformdirs.user_data_dir(name, appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_", extra="ignore")

    mode: Mode = "local"
    data_dir: Path | None = Field(default=None, description="Where the database and keys live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite in the data directory when unset."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    # Local mode: the per-launch token that guards the local API (generated when unset).
    local_token: str | None = None

    # Server mode auth.
    secret_key: str | None = Field(default=None, description="JWT signing key; kept on disk if unset.")
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    login_max_failures: int = 10
    login_window_seconds: int = 300

    # Limits.
    max_body_bytes: int = 5 * 1024 * 1024
    # A sync push carries many records at once.
    max_push_bytes: int = 64 * 1024 * 1024
    # SQLite durability: FULL syncs the WAL on each commit (survives power loss), NORMAL only
    # at checkpoints (survives a process crash, which is what `kill -9` tests).
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Per server process: database connections kept open, which is also how many requests
    # do database work at once; overflow connections are opened only past that (rarely).
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)

    # Local mode sync.
    use_keyring: bool = True
    sync_timeout_seconds: float = 10.0
    final_sync_seconds: float = 3.0

    # Server mode behind reverse proxies: addresses/CIDRs whose X-Forwarded-For is believed.
    trusted_proxies: str = ""

    log_level: str = "INFO"
    access_log: bool = True

    def resolved_data_dir(self) -> Path:
        path = self.data_dir or default_data_dir(self.mode)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'ferry.db'}"
