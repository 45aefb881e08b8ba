"""The pieces under the backends: addresses, refusals, preview frames, history, graphs, specs, limits, tokens."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from sd_studio.document.geometry import Extent
from sd_studio.engine.backends.base import BackendError, BackendJob, EventJob, clean_text, fit_result
from sd_studio.engine.backends.bedrock.catalog import catalog
from sd_studio.engine.backends.comfyui.protocol import ServerAddress, parse_preview, read_history, refusal
from sd_studio.engine.backends.comfyui.workflow import ServerInfo, build_graph, native_resolution
from sd_studio.engine.backends.settings import BedrockSettings, ComfySettings, SageMakerSettings, parse_backend
from sd_studio.errors import Cancelled


@pytest.mark.parametrize("typed, http, label", [
    ("gpu-box:8188", "http://gpu-box:8188", "gpu-box:8188"),
    ("https://farm.example.com/comfy/", "https://farm.example.com/comfy", "farm.example.com/comfy"),
    (" http://[::1]:8188 ", "http://[::1]:8188", "[::1]:8188"),
])
def test_addresses(typed, http, label):
    address = ServerAddress.parse(typed)
    assert (address.http, address.label) == (http, label)
    assert address.websocket == http.replace("http", "ws", 1)


def test_server_text_is_made_safe_to_show():
    assert clean_text("line one\nline two\x1b[31m red \u202e") == "line one line two [31m red"
    assert len(clean_text("x" * 1000)) == 300


def test_refusals_name_the_node_or_its_errors():
    missing = refusal({"error": {"type": "missing_node_type", "message": "Node 'X' not found.",
                                 "extra_info": {"class_type": "ImpactWildcard"}}, "node_errors": {}}, "h:1")
    assert "lacks the node ImpactWildcard" in str(missing)
    bad = refusal({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed"},
                   "node_errors": {"9": {"class_type": "KSampler", "errors": [
                       {"type": "value_not_in_list", "message": "Value not in list",
                        "details": "sampler_name: 'euler_x' not in [...]"}]}}}, "h:1")
    assert str(bad) == "The ComfyUI server at h:1 refused the job (KSampler: sampler_name: 'euler_x' not in [...])."
    assert "no reason given" in str(refusal(None, "h:1"))


def _jpeg(colour=(1, 2, 3)):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(out, format="JPEG")
    return out.getvalue()


def test_preview_frames_old_and_new():
    old = parse_preview(struct.pack(">II", 1, 1) + _jpeg())
    assert old.prompt_id is None and old.pixels.shape == (4, 4, 3)
    meta = json.dumps({"prompt_id": "p1", "node_id": "9", "image_type": "image/jpeg"}).encode()
    new = parse_preview(struct.pack(">II", 4, len(meta)) + meta + _jpeg())
    assert new.prompt_id == "p1" and new.pixels.shape == (4, 4, 3)
    assert parse_preview(struct.pack(">II", 3, 0) + b"text") is None  # a text frame
    assert parse_preview(struct.pack(">II", 1, 1) + b"not an image") is None
    assert parse_preview(b"\x00\x00") is None


def test_history_outcomes():
    done = {"p": {"outputs": {"11": {"images": [{"filename": "a.png", "subfolder": "s", "type": "output"}]}},
                  "status": {"status_str": "success", "completed": True, "messages": []}}}
    outcome = read_history(done, "p", "11")
    assert outcome.completed and outcome.error is None and outcome.images == (("a.png", "s", "output"),)
    failed = {"p": {"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": [
        ["execution_error", {"node_type": "VAEDecode", "exception_message": "boom\n"}]]}}}
    assert read_history(failed, "p", "11").error == "VAEDecode: boom"
    assert read_history({}, "p", "11") is None
    legacy = {"p": {"outputs": {"11": {"images": [{"filename": "b.png"}]}}}}  # servers before the status field
    assert read_history(legacy, "p", "11").images == (("b.png", "", "output"),)


def _info(**changes):
    info = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["SDXL/juggernaut.safetensors"], {}]}}},
            "KSampler": {"input": {"required": {"sampler_name": ["COMBO", {"options": ["euler", "lcm"]}],
                                                "scheduler": [["normal", "sgm_uniform"], {}]}}}}
    for name in ("CLIPTextEncode", "VAEDecode", "SaveImage", "EmptyLatentImage"):
        info[name] = {"input": {"required": {}}}
    info.update(changes)
    return ServerInfo.parse(info, "h:1")


def test_server_info_reads_both_combo_formats_and_finds_checkpoints_by_name():
    info = _info()
    assert info.samplers == ("euler", "lcm") and info.our_samplers() == ("Euler", "LCM")
    assert info.checkpoint("juggernaut", "h:1") == "SDXL/juggernaut.safetensors"
    assert info.modes() == ("txt2img",)
    with pytest.raises(BackendError, match="does not answer like ComfyUI"):
        ServerInfo.parse({"hello": 1}, "h:1")
    assert native_resolution("SDXL/juggernaut.safetensors") == 1024 and native_resolution("v1-5.ckpt") == 512


def test_a_graph_needs_the_servers_sampler_pair():
    job = BackendJob("txt2img", None, None, "p", "n", 4, 1.5, 1.0, (1,), "LCM", 512, 512)
    graph = build_graph(job, 77, _info(), "SDXL/juggernaut.safetensors", "h:1")
    assert graph["9"]["inputs"]["sampler_name"] == "lcm" and graph["9"]["inputs"]["scheduler"] == "sgm_uniform"
    assert graph["9"]["inputs"]["seed"] == 77 and graph["3"]["inputs"]["text"] == "n"
    with pytest.raises(BackendError, match=r"no dpmpp_2m/karras sampler for 'DPM\+\+ 2M Karras'; it offers Euler, LCM"):
        build_graph(BackendJob("txt2img", None, None, "p", "", 4, 7, 1, (1,), "DPM++ 2M Karras", 512, 512), 1,
                    _info(), "x", "h:1")


@pytest.mark.parametrize("spec, expected", [
    ("local", None),
    ("comfyui=http://a:1, http://b:2", ComfySettings),
    ("bedrock:amazon.nova-canvas-v1:0", BedrockSettings),
    ("sagemaker:my-endpoint", SageMakerSettings),
])
def test_backend_specs(spec, expected):
    parsed = parse_backend(spec, region="eu-west-1", token="t")
    if expected is None:
        assert parsed is None
        return
    assert isinstance(parsed, expected)
    if isinstance(parsed, ComfySettings):
        assert [s.url for s in parsed.servers] == ["http://a:1", "http://b:2"] and parsed.servers[0].token == "t"
    if isinstance(parsed, BedrockSettings):
        assert parsed.model_id == "amazon.nova-canvas-v1:0" and parsed.region == "eu-west-1"


def test_size_limits_fit_or_refuse():
    nova = catalog()["amazon.nova-canvas-v1:0"].limits
    fitted = nova.fit(Extent(200, 104), "Nova")
    assert fitted.width % 16 == 0 and fitted.height % 16 == 0 and min(fitted) >= 320
    big = nova.fit(Extent(4000, 3000), "Nova")
    assert big.pixel_count <= 4194304 and abs(big.width / big.height - 4 / 3) < 0.02
    with pytest.raises(BackendError, match="1:4 to 4:1"):
        nova.fit(Extent(1000, 200), "Nova")
    stability = catalog()["stability.stable-image-inpaint-v1:0"].limits
    assert stability.fit(Extent(536, 488), "S") == Extent(536, 488)  # within limits: sent as planned
    assert stability.seed(2**32 - 1) == 0 and stability.seed(5) == 5


def test_fit_result_scales_a_server_size_and_drops_alpha():
    out = fit_result(np.zeros((100, 50, 4), np.uint8), Extent(64, 128), "x")
    assert out.shape == (128, 64, 3)
    with pytest.raises(BackendError, match="not an RGB image"):
        fit_result(np.zeros((10, 10), np.float32), Extent(10, 10), "x")


def test_an_event_job_delivers_progress_on_the_waiting_thread_and_cancels():
    import threading

    job = EventJob()
    seen = []
    threading.Thread(target=lambda: (job.report("p1"), job.finish(["image"]))).start()
    assert job.wait(progress=lambda p: seen.append((p, threading.current_thread()))) == ["image"]
    assert seen == [("p1", threading.main_thread())]
    told = []
    cancelled = EventJob(on_cancel=lambda: told.append(True))
    with pytest.raises(Cancelled):
        cancelled.wait(cancel=lambda: True)
    assert told == [True] and cancelled.cancel_requested


def test_the_token_folder_is_private(tmp_path):
    import os

    from sd_studio.engine.backends.tokens import TokenStore, tokens_dir

    folder = tokens_dir()
    if os.name == "posix":
        assert (folder.stat().st_mode & 0o777) == 0o700
    store = TokenStore(use_keyring=False)
    store.set("http://a:1", "secret")
    assert TokenStore(use_keyring=False).get("http://a:1") == "secret"
    store.set("http://a:1", "")
    assert store.get("http://a:1") == ""


def test_open_backends_are_reused_until_their_settings_change():
    from sd_studio.engine.backends.open import OpenBackends
    from sd_studio.engine.backends.settings import ComfyServerSettings

    backends = OpenBackends()
    try:
        first = backends.get(ComfySettings((ComfyServerSettings("http://127.0.0.1:9"),)))
        assert backends.get(ComfySettings((ComfyServerSettings("http://127.0.0.1:9"),))) is first
        other = backends.get(ComfySettings((ComfyServerSettings("http://127.0.0.1:10"),)))
        assert other is not first and first._loop._loop is None  # the old pool was closed
        assert backends.get(None).kind == "local"
    finally:
        backends.close()
