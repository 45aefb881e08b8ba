"""The ComfyUI backend against a local server that speaks (and fails like) ComfyUI: graphs, results, faults, pools."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_comfyui import FakeComfyUI

from sd_studio.engine.backends.base import BackendError
from sd_studio.engine.backends.comfyui.backend import ComfyBackend
from sd_studio.engine.backends.comfyui.server import Timeouts
from sd_studio.engine.backends.settings import ComfyServerSettings
from sd_studio.engine.generate import generate
from sd_studio.engine.request import GenerationRequest
from sd_studio.errors import Cancelled, GenerationError

FAST = Timeouts(connect=5, request=10, poll=0.05, idle=10, dead=0.5, reconnect=0.02)


@pytest.fixture
def server():
    """A fake ComfyUI on 127.0.0.1, stopped after the test."""
    fake = FakeComfyUI()
    fake.url = fake.serve()
    yield fake
    fake.hold.set()
    fake.shutdown()


@pytest.fixture
def backends():
    """Makes ComfyBackends that are closed after the test."""
    made = []

    def make(*urls, timeouts=FAST, **options):
        backend = ComfyBackend(list(urls), timeouts=timeouts, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def _photo(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[40:70, 60:100] = 255
    return image, mask


def _far_from(mask, distance):
    import cv2

    return cv2.dilate(mask, np.ones((2 * distance + 1,) * 2, np.uint8)) == 0


def _inpaint(image, mask, **fields):
    fields = {"prompt": "a red barn", "model": "sd15", "seed": 5, "engine": "diffusion", **fields}
    return GenerationRequest("inpaint", image=image, mask=mask, **fields)


def _graph(server, index=-1):
    return {node["class_type"]: node["inputs"] for node in server.received[index]["prompt"].values()}


def test_inpaint_keeps_every_pixel_outside_the_mask_whatever_the_server_returns(server, backends):
    backend = backends(server.url)
    image, mask = _photo()
    events = []
    result = generate(_inpaint(image, mask, feather=3), progress=events.append, backend=backend)
    out = result.composite_onto(image)
    far = _far_from(mask, 3)
    # the server inverted the region: every pixel it sent differs, yet none of them shows away from the mask
    assert np.array_equal(out[..., :3][far], image[far])
    inside = np.abs(out[..., :3][mask > 0].astype(int) - image[mask > 0]).mean()
    assert inside > 60  # random pixels inverted: about 85 apart on average (after the scaling both ways)
    graph = _graph(server)
    assert graph["CheckpointLoaderSimple"]["ckpt_name"] == "sd15.safetensors"
    assert graph["LoadImageMask"]["channel"] == "red"
    assert graph["InpaintModelConditioning"]["noise_mask"] is True
    assert graph["KSampler"]["seed"] == 5 and graph["KSampler"]["sampler_name"] == "euler_ancestral"
    assert graph["KSampler"]["scheduler"] == "normal" and graph["KSampler"]["denoise"] == 1.0
    assert server.received[-1]["client_id"]  # messages come back to our socket only
    params = result.parameters[0]
    assert params["model"] == "sd15.safetensors" and params["Backend"] == "ComfyUI" and params["seed"] == 5
    assert params["width"] == result.parameters[0]["width"] and params["mode"] == "inpaint"
    steps = [e for e in events if e.phase == "denoising"]
    assert steps and steps[-1].step == steps[-1].total == 20
    assert any(e.preview is not None for e in steps)  # the server's JPEG preview frames reach the caller


def test_the_uploaded_region_and_mask_are_what_the_model_should_see(server, backends):
    import io

    from PIL import Image

    backend = backends(server.url)
    image, mask = _photo()
    result = generate(_inpaint(image, mask), backend=backend)
    graph = _graph(server)
    with Image.open(io.BytesIO(server.uploads[graph["LoadImage"]["image"]])) as sent:
        sent_rgb = np.asarray(sent.convert("RGB"))
    with Image.open(io.BytesIO(server.uploads[graph["LoadImageMask"]["image"]])) as sent:
        sent_mask = np.asarray(sent)
    assert sent_rgb.shape[:2] == sent_mask.shape == (result.parameters[0]["height"], result.parameters[0]["width"])
    assert set(np.unique(sent_mask)) == {0, 255}  # white repaints: LoadImageMask reads the red channel


def test_variants_are_one_prompt_per_seed(server, backends):
    backend = backends(server.url)
    image, mask = _photo()
    result = generate(_inpaint(image, mask, variants=3, seed=100), backend=backend)
    assert result.seeds == [100, 101, 102]
    assert sorted(_graph(server, i)["KSampler"]["seed"] for i in range(3)) == [100, 101, 102]
    assert not np.array_equal(result.images[0], result.images[1])


def test_text_to_image_and_image_to_image_graphs(server, backends):
    backend = backends(server.url)
    result = generate(GenerationRequest("txt2img", prompt="a lighthouse", model="sdxl_base_1.0", width=640,
                                        height=448, seed=3, engine="diffusion", scheduler="DPM++ 2M Karras"),
                      backend=backend)
    graph = _graph(server)
    assert graph["EmptyLatentImage"] == {"width": 640, "height": 448, "batch_size": 1}
    assert (graph["KSampler"]["sampler_name"], graph["KSampler"]["scheduler"]) == ("dpmpp_2m", "karras")
    assert result.images[0].shape == (448, 640, 4)
    image, _ = _photo()
    generate(GenerationRequest("img2img", image=image, prompt="oil painting", model="sd15", strength=0.4,
                               engine="diffusion"), backend=backend)
    graph = _graph(server)
    assert "VAEEncode" in graph and "LoadImageMask" not in graph and graph["KSampler"]["denoise"] == 0.4


def test_capabilities_come_from_the_server(server, backends):
    backend = backends(server.url)
    caps = backend.capabilities()
    assert caps.models == ("sd15.safetensors", "sdxl_base_1.0.safetensors")
    assert "Euler a" in caps.samplers and "dpmpp_2m" in caps.schedulers
    assert caps.modes == ("txt2img", "img2img", "inpaint")
    assert caps.device == "NVIDIA GeForce RTX 4090, 24.0 GiB"
    report = backend.test()[0]
    assert report.device == caps.device and report.checkpoints == caps.models and report.websocket


def test_an_unknown_checkpoint_names_the_ones_the_server_has(server, backends):
    image, mask = _photo()
    with pytest.raises(BackendError, match="has no checkpoint 'dreamshaper'.*sd15.safetensors"):
        generate(_inpaint(image, mask, model="dreamshaper"), backend=backends(server.url))


def test_servers_without_inpaint_model_conditioning_get_the_older_nodes(backends):
    fake = FakeComfyUI(missing_nodes={"InpaintModelConditioning"})
    url = fake.serve()
    try:
        backend = backends(url)
        image, mask = _photo()
        generate(_inpaint(image, mask), backend=backend)
        assert "VAEEncodeForInpaint" in _graph(fake)
        generate(_inpaint(image, mask, strength=0.6), backend=backend)
        assert "SetLatentNoiseMask" in _graph(fake) and _graph(fake)["KSampler"]["denoise"] == 0.6
    finally:
        fake.shutdown()


def test_a_missing_node_is_one_sentence(backends):
    fake = FakeComfyUI(missing_nodes={"LoadImageMask"})
    url = fake.serve()
    try:
        image, mask = _photo()
        with pytest.raises(BackendError, match="lacks the node LoadImageMask") as caught:
            generate(_inpaint(image, mask), backend=backends(url))
        assert "\n" not in str(caught.value)
        assert fake.received == []  # refused before anything was queued
    finally:
        fake.shutdown()


def test_a_refused_prompt_reports_the_node_errors_and_the_job_can_run_again(server, backends):
    backend = backends(server.url)
    image, mask = _photo()
    server.refuse_next = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed "
                                    "validation", "details": "", "extra_info": {}},
                          "node_errors": {"1": {"class_type": "CheckpointLoaderSimple", "dependent_outputs": ["11"],
                                                "errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                                            "details": "ckpt_name: 'sd15.safetensors' not in []"}]}}}
    with pytest.raises(BackendError, match=r"refused the job \(CheckpointLoaderSimple: ckpt_name"):
        generate(_inpaint(image, mask), backend=backend)
    server.refuse_next = {"error": {"type": "missing_node_type", "message": "Node 'Foo' not found.",
                                    "extra_info": {"node_id": "3", "class_type": "Foo"}}, "node_errors": {}}
    with pytest.raises(BackendError, match="lacks the node Foo"):
        generate(_inpaint(image, mask), backend=backend)
    assert generate(_inpaint(image, mask), backend=backend).images  # retryable: the next run goes through


def test_an_execution_error_mid_run_is_one_sentence_and_the_next_run_works(server, backends):
    backend = backends(server.url)
    server.fail_at_step = 3
    image, mask = _photo()
    with pytest.raises(BackendError, match="failed: KSampler: CUDA out of memory") as caught:
        generate(_inpaint(image, mask), backend=backend)
    assert "\n" not in str(caught.value)
    assert generate(_inpaint(image, mask), backend=backend).images


def test_a_dropped_socket_does_not_lose_the_job(server, backends):
    backend = backends(server.url)
    server.drop_sockets_at_step = 2
    image, mask = _photo()
    result = generate(_inpaint(image, mask), backend=backend)
    assert result.images and len(server.finished) == 1
    assert len(server.received) == 1  # followed to its end after the reconnect, not sent twice


def test_a_job_the_server_drops_is_sent_again(server, backends):
    backend = backends(server.url)
    server.lose_next = 1
    image, mask = _photo()
    result = generate(_inpaint(image, mask), backend=backend)
    assert result.images and len(server.received) == 2 and len(server.finished) == 1


def test_a_server_that_keeps_dropping_jobs_gives_up_with_a_sentence(server, backends):
    backend = backends(server.url, attempts=2)
    server.lose_next = 5
    image, mask = _photo()
    with pytest.raises(BackendError, match="dropped the job") as caught:
        generate(_inpaint(image, mask), backend=backend)
    assert caught.value.retryable


def test_a_token_is_sent_and_a_wrong_one_is_named_without_showing_it(backends):
    fake = FakeComfyUI(token="s3cret-token")
    url = fake.serve()
    try:
        image, mask = _photo()
        with pytest.raises(BackendError, match="refused the token") as caught:
            generate(_inpaint(image, mask), backend=backends(ComfyServerSettings(url, token="wrong-token")))
        assert "wrong-token" not in str(caught.value)
        with pytest.raises(BackendError, match="wants a token"):
            generate(_inpaint(image, mask), backend=backends(url))
        result = generate(_inpaint(image, mask), backend=backends(ComfyServerSettings(url, token="s3cret-token")))
        assert result.images
        assert "Bearer s3cret-token" in [h.get("Authorization") for h in fake.headers_seen]
        assert "s3cret-token" not in result.parameters_text(0)
    finally:
        fake.shutdown()


def test_an_unreachable_server_is_one_sentence(backends):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing listens once the probe closes
    image, mask = _photo()
    with pytest.raises(BackendError, match=rf"Cannot reach the ComfyUI server at 127.0.0.1:{port} \(") as caught:
        generate(_inpaint(image, mask), backend=backends(f"http://127.0.0.1:{port}"))
    assert caught.value.retryable and "\n" not in str(caught.value)


def test_a_silent_running_job_times_out(server, backends):
    server.gpu_time = 30  # one step: no progress message for 30 s
    backend = backends(server.url, timeouts=Timeouts(connect=5, request=10, poll=0.05, idle=0.3, dead=0.5))
    image, mask = _photo()
    with pytest.raises(BackendError, match="made no progress"):
        generate(_inpaint(image, mask, steps=1), backend=backend)


def _run_in_thread(fn):
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _wait_for(condition, what: str):
    import time

    deadline = time.monotonic() + 20  # a generous bound on an event, not a speed requirement
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_cancel_takes_a_queued_job_off_the_server_queue(server, backends):
    backend = backends(server.url)
    server.hold.clear()
    flag = threading.Event()
    image, mask = _photo()
    thread, outcome = _run_in_thread(lambda: generate(_inpaint(image, mask), cancel=flag.is_set, backend=backend))
    _wait_for(lambda: server.pending, "the prompt to be queued")
    flag.set()
    thread.join(20)
    assert isinstance(outcome.get("error"), Cancelled)
    _wait_for(lambda: not server.pending, "the prompt to be deleted from the queue")
    assert server.finished == []


def test_cancel_interrupts_our_running_job_only(server, backends):
    backend = backends(server.url)
    server.gpu_time = 20
    flag = threading.Event()
    image, mask = _photo()
    seen = []

    def progress(p):
        seen.append(p)
        if p.phase == "denoising":
            flag.set()

    thread, outcome = _run_in_thread(lambda: generate(_inpaint(image, mask, steps=150), progress=progress,
                                                      cancel=flag.is_set, backend=backend))
    thread.join(20)
    assert isinstance(outcome.get("error"), Cancelled)
    _wait_for(lambda: server.finished, "the server to stop the prompt")
    entry = server.history[server.finished[0]]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_pool_spreads_variants_over_the_servers(backends):
    fakes = [FakeComfyUI(gpu_time=0.05) for _ in range(3)]
    urls = [fake.serve() for fake in fakes]
    try:
        backend = backends(*urls)
        assert backend.label == "ComfyUI pool of 3 servers"
        image, mask = _photo()
        result = generate(_inpaint(image, mask, variants=6), backend=backend)
        assert len(result.images) == 6
        assert all(len(fake.received) >= 1 for fake in fakes)
        assert sum(len(fake.received) for fake in fakes) == 6
    finally:
        for fake in fakes:
            fake.shutdown()


def test_pool_sends_a_job_to_the_shortest_queue(backends):
    busy, idle = FakeComfyUI(), FakeComfyUI()
    urls = [busy.serve(), idle.serve()]
    try:
        busy.hold.clear()  # someone else's three jobs wait there
        for i in range(3):
            busy.pending.append((i, f"other-{i}", {}, {}, []))
        backend = backends(*urls)
        image, mask = _photo()
        generate(_inpaint(image, mask), backend=backend)
        assert len(idle.received) == 1 and busy.received == []
    finally:
        busy.hold.set()
        busy.pending.clear()
        for fake in (busy, idle):
            fake.shutdown()


def test_pool_resubmits_the_jobs_of_a_server_that_dies(backends):
    doomed, healthy = FakeComfyUI(gpu_time=20), FakeComfyUI()
    urls = [doomed.serve(), healthy.serve()]
    try:
        healthy.hold.clear()
        for i in range(2):  # the healthy server looks busier, so the job goes to the doomed one first
            healthy.pending.append((i, f"other-{i}", {}, {}, []))
        backend = backends(*urls)
        image, mask = _photo()
        thread, outcome = _run_in_thread(lambda: generate(_inpaint(image, mask), backend=backend))
        _wait_for(lambda: doomed.running is not None, "the job to start on the first server")
        healthy.pending.clear()
        healthy.hold.set()
        doomed.call(doomed.stop())  # killed mid-run: connections refused from now on
        thread.join(30)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["value"].images and len(healthy.finished) == 1
    finally:
        healthy.hold.set()
        healthy.shutdown()
        doomed._loop.call_soon_threadsafe(doomed._loop.stop)


def test_every_pool_server_down_is_one_sentence(backends):
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    image, mask = _photo()
    with pytest.raises(GenerationError, match="Cannot reach the ComfyUI server"):
        generate(_inpaint(image, mask), backend=backends(*(f"http://127.0.0.1:{p}" for p in ports)))


def test_https_with_a_private_ca(tmp_path, backends):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    fake = FakeComfyUI()
    url = fake.serve(ssl_context=context)
    try:
        assert url.startswith("https://")
        image, mask = _photo()
        with pytest.raises(BackendError, match="certificate this computer does not trust"):
            generate(_inpaint(image, mask), backend=backends(url))
        result = generate(_inpaint(image, mask), backend=backends(ComfyServerSettings(url, ca_file=str(cert))))
        assert result.images and len(fake.finished) == 1  # the progress socket ran over wss:// too
    finally:
        fake.shutdown()


def test_a_token_never_reaches_the_incident_log_or_the_record(backends):
    from sd_studio.incidents import log_exception, log_path, set_context

    fake = FakeComfyUI(token="tok-9f8e7d6c")
    url = fake.serve()
    try:
        backend = backends(ComfyServerSettings(url, token="tok-9f8e7d6c"))
        set_context(device=backend.label, model="sd15")
        image, mask = _photo()
        result = generate(_inpaint(image, mask), backend=backend)
        fake.fail_at_step = 1
        with pytest.raises(BackendError) as caught:
            generate(_inpaint(image, mask), backend=backend)
        log_exception(caught.value, action="Generate")
        logged = log_path().read_text(encoding="utf-8")
        assert "KSampler: CUDA out of memory" in logged  # the failure is there...
        assert "tok-9f8e7d6c" not in logged and "tok-9f8e7d6c" not in result.parameters_text(0)  # ...the token not
        assert "tok-9f8e7d6c" not in repr(ComfyServerSettings(url, token="tok-9f8e7d6c"))
    finally:
        set_context(device=None, model=None)
        fake.shutdown()


def test_loras_are_refused_rather_than_silently_dropped(server, backends, tmp_path):
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    image, mask = _photo()
    with pytest.raises(BackendError, match="LoRAs are applied on this computer only"):
        generate(_inpaint(image, mask, loras=((str(lora), 0.8),)), backend=backends(server.url))
    assert server.received == []
