"""Dock panels: layers, history and generation settings."""
