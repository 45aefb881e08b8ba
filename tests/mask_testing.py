"""The smart-mask test data (tests/engine/segment_data.py) for the tests outside tests/engine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_segment_data", Path(__file__).parent / "engine" / "segment_data.py")
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)

disc_photo = _data.disc_photo
save_tiny_sam = _data.save_tiny_sam
