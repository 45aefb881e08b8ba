"""SD Studio: a desktop image editor whose brush can ask Stable Diffusion for help."""

__version__ = "0.1.0"
