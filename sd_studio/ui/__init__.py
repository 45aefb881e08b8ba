"""The Qt editor: the only part of sd_studio that imports PySide6 widgets."""

APP_NAME = "SD Studio"
"""The application's name as the user sees it (window titles, dialogs)."""
