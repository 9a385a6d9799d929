"""Process settings, read from the environment (and `.env`) by pydantic-settings.

One `Settings` class serves every process; nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"

Environment = Literal["dev", "test", "production"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    environment: Environment = Field(
        "production",
        description="dev and test allow the default SECRET_KEY; production refuses it.",
    )
    host: str = "0.0.0.0"
    port: int | None = Field(None, description="Listen port; each service has its own default.")

    # Storage and bus. Empty means the embedded in-process engine (only `dronecast dev` and tests).
    mongodb_uri: str = ""
    database_name: str = "dronecast"
    redis_url: str = ""

    # Security
    secret_key: str = DEFAULT_SECRET_KEY
    auth_enabled: bool = True
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    # Event retention: the window a reconnecting client can recover from.
    retention_seconds: int = Field(600, ge=1)
    retention_max_events: int = Field(100_000, ge=100)

    # Gateway
    client_queue_limit: int = Field(
        1000, ge=10, description="Frames queued for one Socket.IO client before it is cut off."
    )
    subscriptions_per_client: int = Field(1000, ge=1)
    drain_seconds: float = Field(10.0, ge=0)

    # Lists
    page_default: int = 50
    page_max: int = 500

    # Observability
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _refuse_default_secret_outside_dev(self) -> Settings:
        if (
            self.environment == "production"
            and self.auth_enabled
            and self.secret_key == DEFAULT_SECRET_KEY
        ):
            raise ValueError(
                "SECRET_KEY is the built-in default; set a real SECRET_KEY "
                "(or ENVIRONMENT=dev for local development)"
            )
        return self

    @property
    def embedded_store(self) -> bool:
        return not self.mongodb_uri

    @property
    def embedded_broker(self) -> bool:
        return not self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
