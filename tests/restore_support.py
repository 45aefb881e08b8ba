"""The restoration test helpers of tests/engine (tiny spandrel models, synthetic damage) for the CLI and UI tests."""

from __future__ import annotations

import sys
from pathlib import Path

_ENGINE_TESTS = str(Path(__file__).parent / "engine")
if _ENGINE_TESTS not in sys.path:
    sys.path.append(_ENGINE_TESTS)

import damage_synth
import restore_models

__all__ = ["damage_synth", "restore_models"]
