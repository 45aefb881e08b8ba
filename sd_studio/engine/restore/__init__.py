"""Restoring old photos with model files the user has: erasers, faces, colour, upscalers, expand (see README)."""
