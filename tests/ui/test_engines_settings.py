"""Settings > Engines: servers, tokens kept out of QSettings, the Test button on a worker thread, AWS choices."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from fake_comfyui import FakeComfyUI

from sd_studio.engine.backends.settings import BackendKind, BedrockSettings, ComfySettings
from sd_studio.engine.backends.tokens import TokenStore
from sd_studio.ui.engines import EnginesPage, configured_engines, engine_settings


@pytest.fixture
def tokens(tmp_path):
    """A token store in a file of its own (no keyring)."""
    return TokenStore(tmp_path / "secrets" / "tokens.json", use_keyring=False)


@pytest.fixture
def page(qtbot, settings, tokens):
    """The page on a fresh settings file."""
    widget = EnginesPage(settings, tokens)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def server():
    """A ComfyUI stand-in that wants a token."""
    fake = FakeComfyUI(token="gpu-box-token")
    fake.url = fake.serve()
    yield fake
    fake.shutdown()


def test_a_server_and_its_token_are_stored_apart(page, settings, tokens, tmp_path):
    page.url.setText("https://gpu-box:8443/")
    page.token.setText("very-secret-token")
    assert page.add_server()
    assert page.servers.item(0).text() == "gpu-box:8443  (token)"
    page.save()
    settings.sync()
    stored = Path(settings.fileName()).read_text(encoding="utf-8")
    assert "https://gpu-box:8443" in stored and "very-secret-token" not in stored
    assert tokens.get("https://gpu-box:8443") == "very-secret-token"
    assert (tokens.path.stat().st_mode & 0o077) == 0  # the token file: the user's eyes only
    comfy = engine_settings(settings, BackendKind.COMFYUI, tokens)
    assert isinstance(comfy, ComfySettings)
    assert comfy.servers[0].url == "https://gpu-box:8443" and comfy.servers[0].token == "very-secret-token"
    assert "very-secret-token" not in repr(comfy)


def test_a_bad_address_is_refused_with_its_reason(page):
    page.url.setText("ftp://nowhere")
    assert not page.add_server()
    assert "http:// or https://" in page.report.text() and page.servers.count() == 0
    page.url.setText("http://me:pw@host:8188")
    assert not page.add_server()
    assert "token box" in page.report.text()


def test_removing_a_server_forgets_its_token(page, settings, tokens):
    page.url.setText("http://a:8188")
    page.token.setText("t")
    page.add_server()
    page.save()
    page.servers.setCurrentRow(0)
    page.remove_server()
    page.save()
    assert tokens.get("http://a:8188") == "" and engine_settings(settings, "comfyui", tokens) is None


def test_test_shows_the_gpu_and_checkpoints_from_a_worker_thread(page, qtbot, server, tokens):
    page.url.setText(server.url)
    page.token.setText("gpu-box-token")
    page.add_server()
    page.servers.setCurrentRow(0)
    with qtbot.waitSignal(page.tested, timeout=20000) as caught:
        page.test_button.click()
        assert not page.test_button.isEnabled()  # the window goes on while the worker connects
    report = caught.args[0]
    assert report.device == "NVIDIA GeForce RTX 4090, 24.0 GiB"
    text = page.report.text()
    assert "NVIDIA GeForce RTX 4090, 24.0 GiB, ComfyUI 0.3.60" in text and "sd15.safetensors" in text
    assert "gpu-box-token" not in text and page.test_button.isEnabled()


def test_test_with_a_wrong_token_shows_one_sentence(page, qtbot, server):
    page.url.setText(server.url)
    page.token.setText("wrong")
    with qtbot.waitSignal(page.tested, timeout=20000):
        page.test_button.click()  # the typed address is tested before it is added
    assert "refused the token" in page.report.text() and page.report.property("error")


def test_bedrock_and_sagemaker_choices_round_trip(page, settings, tokens, qtbot):
    index = page.bedrock_model.findData("amazon.nova-canvas-v1:0")
    page.bedrock_model.setCurrentIndex(index)
    assert "Amazon Nova Canvas" in page.bedrock_price.text() and "$0.040" in page.bedrock_price.text()
    page.bedrock_region.setCurrentText("eu-west-1")
    page.sagemaker_endpoint.setText("jumpstart-sd21")
    page.sagemaker_region.setCurrentText("us-east-1")
    page.save()
    assert engine_settings(settings, BackendKind.BEDROCK) == BedrockSettings("amazon.nova-canvas-v1:0", "eu-west-1")
    assert engine_settings(settings, BackendKind.SAGEMAKER).endpoint == "jumpstart-sd21"
    assert configured_engines(settings, tokens) == [BackendKind.LOCAL, BackendKind.BEDROCK, BackendKind.SAGEMAKER]
    again = EnginesPage(settings, tokens)
    qtbot.addWidget(again)
    assert again.bedrock_model.currentData() == "amazon.nova-canvas-v1:0"
    assert again.bedrock_region.currentText() == "eu-west-1" and again.sagemaker_region.currentText() == "us-east-1"
