"""Stable Diffusion on the processor: what the CPU offers, the UNet precision, the OpenVINO backend."""
