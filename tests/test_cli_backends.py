"""--backend on the generation commands and `sd-studio backends`, in-process, against a local ComfyUI stand-in."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from fake_comfyui import FakeComfyUI

from sd_studio.cli import main
from sd_studio.document.io.parameters import parse_parameters


@pytest.fixture
def server():
    """A ComfyUI stand-in on 127.0.0.1."""
    fake = FakeComfyUI()
    fake.url = fake.serve()
    yield fake
    fake.shutdown()


@pytest.fixture
def photo(tmp_path):
    """A random photo and a mask of a rectangle in it, as PNG files."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (90, 120, 3), np.uint8)
    mask = np.zeros((90, 120), np.uint8)
    mask[30:60, 40:80] = 255
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    return tmp_path, pixels, mask


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_inpaint_on_a_comfyui_server(server, photo, capsys):
    import cv2

    folder, pixels, mask = photo
    out = folder / "out.png"
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(out),
                   "--prompt", "a stone", "--seed", "11", "--backend", f"comfyui={server.url}"])
    assert status == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"running on ComfyUI at 127.0.0.1:{server.port}" in err
    with Image.open(out) as written:
        result = np.asarray(written.convert("RGB"))
        parameters = parse_parameters(written.text["parameters"])
    far = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    assert np.array_equal(result[far], pixels[far])
    assert parameters["Backend"] == "ComfyUI" and parameters["model"] == "sd15.safetensors"
    assert parameters["seed"] == 11


def test_a_token_comes_from_the_environment(photo, monkeypatch, capsys):
    fake = FakeComfyUI(token="t0ken")
    url = fake.serve()
    try:
        folder, _, _ = photo
        args = ["txt2img", "-o", str(folder / "t.png"), "--prompt", "a kite", "--quiet", "--backend", f"comfyui={url}"]
        assert main(args) == 2
        assert "wants a token" in capsys.readouterr().err
        monkeypatch.setenv("SD_STUDIO_COMFYUI_TOKEN", "t0ken")
        assert main(args) == 0
    finally:
        fake.shutdown()


@pytest.mark.parametrize("spec, expected", [
    ("gpu:8188", "Unknown backend 'gpu:8188'"),
    ("comfyui=", "needs the server's address"),
    ("comfyui=ftp://host", "is not an http:// or https:// server address"),
    ("comfyui=http://user:pw@host:8188", "Put the server's token in the token box"),
    ("bedrock:stability.sdxl", "does not know the Bedrock model"),
])
def test_bad_backend_specs_are_one_line(photo, capsys, spec, expected):
    folder, _, _ = photo
    status = main(["txt2img", "-o", str(folder / "t.png"), "--prompt", "x", "--backend", spec])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("sd-studio: error:") and expected in err[0]


def test_an_unreachable_server_is_one_line(photo, capsys):
    folder, _, _ = photo
    port = _closed_port()
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o",
                   str(folder / "o.png"), "--prompt", "x", "--backend", f"comfyui=127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == [(f"sd-studio: error: Cannot reach the ComfyUI server at 127.0.0.1:{port} "
                                    "(connection refused).")]
    assert not (folder / "o.png").exists()


def test_backends_test_shows_device_and_checkpoints(server, capsys):
    port = _closed_port()
    status = main(["backends", "test", server.url, f"http://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert status == 2  # one of the two did not answer
    assert f"127.0.0.1:{server.port}: NVIDIA GeForce RTX 4090, 24.0 GiB, ComfyUI 0.3.60" in out
    assert "checkpoints (2): sd15.safetensors, sdxl_base_1.0.safetensors" in out
    assert "progress socket: yes" in out
    assert f"Cannot reach the ComfyUI server at 127.0.0.1:{port}" in err


def test_backends_models_lists_the_bedrock_catalog(capsys):
    assert main(["backends", "models"]) == 0
    out = capsys.readouterr().out
    assert "stability.sd3-5-large-v1:0\tStable Diffusion 3.5 Large\ttxt2img, img2img\t$0.080/image" in out
    assert "amazon.nova-canvas-v1:0" in out and "stability.stable-fast-upscale-v1:0" in out


def test_bedrock_from_the_command_line_shows_the_cost_first(photo, capsys, monkeypatch, tmp_path):
    """A stubbed bedrock-runtime client stands in for AWS; the command line builds everything else itself."""
    import base64
    import io
    import json

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from sd_studio.engine.backends import aws

    for name, value in (("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "fake"),
                        ("AWS_CONFIG_FILE", str(tmp_path / "none")), ("AWS_EC2_METADATA_DISABLED", "true"),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))):
        monkeypatch.setenv(name, value)
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    stub = Stubber(client)
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), (1, 2, 3)).save(buffer, format="PNG")
    answer = json.dumps({"seeds": [5], "finish_reasons": [None],
                         "images": [base64.b64encode(buffer.getvalue()).decode()]}).encode()
    stub.add_response("invoke_model", {"body": StreamingBody(io.BytesIO(answer), len(answer)),
                                       "contentType": "application/json"})
    stub.activate()
    made = []
    monkeypatch.setattr(aws, "make_client", lambda service, region="", profile="", **o: made.append(region) or client)
    folder, _, _ = photo
    out = folder / "t.png"
    status = main(["txt2img", "-o", str(out), "--prompt", "a lighthouse", "--seed", "5",
                   "--backend", "bedrock:stability.sd3-5-large-v1:0", "--region", "us-east-1"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "running on Amazon Bedrock: Stable Diffusion 3.5 Large; 1 x $0.080" in err
    assert made == ["us-east-1"]
    with Image.open(out) as written:
        assert written.size == (512, 512)
        assert parse_parameters(written.text["parameters"])["Backend"] == "Amazon Bedrock (us-east-1)"
    stub.assert_no_pending_responses()


def test_a_token_saved_in_settings_serves_the_command_line_too(photo, capsys):
    from sd_studio.engine.backends.tokens import TokenStore

    fake = FakeComfyUI(token="saved-token")
    url = fake.serve()
    try:
        TokenStore().set(url, "saved-token")
        folder, _, _ = photo
        assert main(["txt2img", "-o", str(folder / "t.png"), "--prompt", "a kite", "--quiet",
                     "--backend", f"comfyui={url}/"]) == 0, capsys.readouterr().err
    finally:
        fake.shutdown()
