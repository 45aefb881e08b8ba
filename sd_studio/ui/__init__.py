"""The Qt editor: the only part of sd_studio that imports PySide6 widgets."""
