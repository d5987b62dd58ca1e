"""Settings of the recommender, read from the environment (prefix ``GEO_ENGINE_``) and ``.env``.

Nothing is read at import: callers build a settings object and pass it in.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.errors import InvalidInput

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_realdata_dir() -> Path | None:
    """``../shared/realdata`` beside the checkout, when it exists."""
    for candidate in (
        Path.cwd() / ".." / "shared" / "realdata",
        _REPO_ROOT / ".." / "shared" / "realdata",
    ):
        if (candidate / "README.md").is_file():
            return candidate.resolve()
    return None


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEO_ENGINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )


class EvaluationSettings(_Base):
    """The offline evaluation on real participatory-budgeting ballots (Pabulib)."""

    realdata_dir: Path | None = Field(
        default_factory=_default_realdata_dir,
        description="folder of Pabulib city-edition folders (see shared/realdata/README.md)",
    )
    test_share: float = Field(
        default=0.2, gt=0, lt=1, description="share of each edition's voters held out for testing"
    )
    bootstrap_resamples: int = Field(
        default=1000, ge=10, le=100_000, description="resamples of the test users for the 95% CIs"
    )

    def require_realdata_dir(self) -> Path:
        if self.realdata_dir is None:
            raise InvalidInput(
                "no participation data: set GEO_ENGINE_REALDATA_DIR to the shared/realdata folder"
            )
        if not self.realdata_dir.is_dir():
            raise InvalidInput(f"GEO_ENGINE_REALDATA_DIR={self.realdata_dir} is not a folder")
        return self.realdata_dir
