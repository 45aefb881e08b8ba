"""latents_to_rgb: the cheap linear latent -> RGB preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd_studio.engine.preview import LATENT_RGB_FACTORS, latents_to_rgb


def test_zero_latents_are_mid_grey_for_sd1():
    rgb = latents_to_rgb(np.zeros((4, 8, 6), np.float32), "sd1")
    assert rgb.shape == (8, 6, 3) and rgb.dtype == np.uint8
    assert (rgb == 128).all()  # (0 + 1) * 127.5 rounds to 128


def test_each_channel_maps_through_its_factor_row():
    for channel in range(4):
        latents = np.zeros((1, 4, 2, 2), np.float32)
        latents[0, channel] = 1.0
        expected = np.clip(np.rint((np.asarray(LATENT_RGB_FACTORS["sd1"][channel]) + 1) * 127.5), 0, 255)
        assert (latents_to_rgb(latents, "sd1")[0, 0] == expected).all()


def test_sdxl_uses_its_own_factors_and_bias():
    latents = np.zeros((4, 3, 3), np.float32)
    sd1, sdxl = latents_to_rgb(latents, "sd1"), latents_to_rgb(latents, "sdxl")
    assert tuple(sdxl[0, 0]) == (141, 125, 127)  # the bias alone: (0.1084, -0.0175, -0.0011)
    assert not np.array_equal(sd1, sdxl)
    assert np.array_equal(latents_to_rgb(latents, "sd2"), sd1)  # SD2 shares SD1's VAE


def test_values_saturate_instead_of_wrapping():
    latents = np.zeros((4, 2, 2), np.float32)
    latents[3] = -50.0  # channel 3 pushes everything strongly positive... then clipped
    rgb = latents_to_rgb(latents, "sd1")
    assert (rgb == 255).all()
    assert (latents_to_rgb(-latents, "sd1") == 0).all()


def test_torch_and_numpy_inputs_agree():
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((1, 4, 16, 12), generator=generator)
    from_torch = latents_to_rgb(latents, "sd1")
    from_numpy = latents_to_rgb(latents.numpy(), "sd1")
    assert from_torch.shape == (16, 12, 3)
    assert np.abs(from_torch.astype(int) - from_numpy.astype(int)).max() <= 1
    half = latents_to_rgb(latents.half(), "sdxl")
    assert np.abs(half.astype(int) - latents_to_rgb(latents, "sdxl").astype(int)).max() <= 2


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError):
        latents_to_rgb(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError):
        latents_to_rgb(torch.zeros((2, 9, 4, 4)))
