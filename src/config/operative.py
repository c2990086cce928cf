"""A run's operative config: every parameter of every configurable the run calls, as gin records it once they have
all been called. Parsed once per run and shared by what reads it: the unused-binding warning, the start files
(config.gin, the config table, the trackers' hyperparameters) and the resume guard."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from src.config.bindings import parse_bindings


@dataclass(frozen=True)
class OperativeConfig:
    text: str  # gin's operative config: what config.gin holds

    @cached_property
    def bindings(self) -> dict[str, Any]:
        """{"scope/configurable.param": value}, macros resolved (src/config/bindings.py)."""
        return parse_bindings(self.text)

    @classmethod
    def now(cls) -> OperativeConfig:
        """gin's operative config as it stands (complete once every configurable has been called)."""
        import gin

        return cls(gin.operative_config_str())
