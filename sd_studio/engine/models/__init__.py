"""Stable Diffusion models: devices, files and hashes, hub downloads, loading and cache, discovery; never unpickling."""
