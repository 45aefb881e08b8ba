"""Bedrock and SageMaker backends with botocore's Stubber: request bodies, responses, retries, errors, limits, cost.

Nothing here can reach AWS: every client is stubbed and points at 127.0.0.1, the credentials are fake,
the instance-metadata lookup is off and the user's ~/.aws is hidden.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from sd_studio.engine.backends import aws
from sd_studio.engine.backends.base import BackendError, BackendJob, for_backend
from sd_studio.engine.backends.bedrock.backend import BedrockBackend
from sd_studio.engine.backends.bedrock.catalog import catalog, find_model
from sd_studio.engine.backends.sagemaker import SageMakerBackend
from sd_studio.engine.backends.settings import BedrockSettings, SageMakerSettings
from sd_studio.engine.generate import generate
from sd_studio.engine.request import GenerationRequest

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    """Fake credentials and region; the user's AWS files hidden; no instance-metadata lookups."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class Stubbed:
    """A stubbed boto3 client that also records the parameters of every call."""

    def __init__(self, service: str) -> None:
        import boto3
        from botocore.stub import Stubber

        self.client = boto3.client(service, region_name="us-west-2", endpoint_url="http://127.0.0.1:9")
        self.stub = Stubber(self.client)
        self.calls: list[dict] = []
        operation = "InvokeModel" if service == "bedrock-runtime" else "InvokeEndpoint"
        self.client.meta.events.register(f"before-parameter-build.{service}.{operation}",
                                         lambda params, **_: self.calls.append(dict(params)))
        self.stub.activate()
        self.operation = "invoke_model" if service == "bedrock-runtime" else "invoke_endpoint"

    def answer(self, body: dict) -> None:
        from botocore.response import StreamingBody

        raw = json.dumps(body).encode()
        key = "body" if self.operation == "invoke_model" else "Body"
        response = {key: StreamingBody(io.BytesIO(raw), len(raw)),
                    "contentType" if key == "body" else "ContentType": "application/json"}
        self.stub.add_response(self.operation, response)

    def fail(self, code: str, message: str = "", status: int = 400) -> None:
        self.stub.add_client_error(self.operation, service_error_code=code, service_message=message,
                                   http_status_code=status)

    def body(self, index: int = -1) -> dict:
        params = self.calls[index]
        return json.loads(params.get("body") or params.get("Body"))


def _png64(pixels) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _decode(text: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image)


def _stability_answer(seed=1, size=(1024, 1024), colour=(10, 200, 30)):
    return {"seeds": [seed], "finish_reasons": [None],
            "images": [_png64(np.broadcast_to(np.uint8(colour), (size[1], size[0], 3)))]}


def _photo(h=300, w=400):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[100:180, 150:260] = 255
    return image, mask


def _far_from(mask, distance):
    import cv2

    return cv2.dilate(mask, np.ones((2 * distance + 1,) * 2, np.uint8)) == 0


class Sleeps(list):
    """An injected sleep: records the pauses instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _bedrock(model_id: str, stubbed: Stubbed, sleeps=None, **settings):
    retry = aws.Retry(attempts=4, base_delay=1.0, sleep=sleeps if sleeps is not None else Sleeps(),
                      jitter=lambda: 1.0)
    return BedrockBackend(BedrockSettings(model_id, **settings), client=stubbed.client, retry=retry)


def _inpaint(image, mask, **fields):
    return GenerationRequest("inpaint", image=image, mask=mask, **{"prompt": "a wooden bench", "seed": 42, **fields})


def _run(request, backend, **options):
    """generate() on a backend, the request completed as the CLI and the editor complete it."""
    return generate(for_backend(request, backend), backend=backend, **options)


# --- Bedrock ------------------------------------------------------------------------------------------------


def test_stable_image_inpaint_body_and_a_result_that_cannot_leak_outside_the_mask():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer(_stability_answer(42))
    backend = _bedrock("stability.stable-image-inpaint-v1:0", stubbed)
    image, mask = _photo()
    events = []
    result = _run(_inpaint(image, mask, negative_prompt="blurry", feather=2), backend, progress=events.append)
    params = stubbed.calls[0]
    # served through cross-region profiles only: called through the region's profile
    assert params["modelId"] == "us.stability.stable-image-inpaint-v1:0"
    assert params["contentType"] == params["accept"] == "application/json"
    body = stubbed.body()
    assert set(body) == {"prompt", "image", "mask", "seed", "output_format", "negative_prompt"}
    assert body["prompt"] == "a wooden bench" and body["negative_prompt"] == "blurry" and body["seed"] == 42
    assert body["output_format"] == "png"
    sent, sent_mask = _decode(body["image"]), _decode(body["mask"])
    assert sent.shape[:2] == sent_mask.shape and set(np.unique(sent_mask)) == {0, 255}
    out = result.composite_onto(image)
    far = _far_from(mask, 2)
    assert np.array_equal(out[..., :3][far], image[far])
    assert (out[..., :3][mask > 0] == (10, 200, 30)).all()
    record = result.parameters[0]
    assert record["model"] == "stability.stable-image-inpaint-v1:0"
    assert record["Backend"] == "Amazon Bedrock (us-west-2)"
    assert record["Bedrock model"] == "us.stability.stable-image-inpaint-v1:0"
    assert any("Stable Image Inpaint" in e.message for e in events)
    stubbed.stub.assert_no_pending_responses()


def test_nova_canvas_masks_are_inverted_and_sizes_fit_its_limits():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer({"images": [_png64(np.zeros((320, 320, 3)))], "error": None})
    backend = _bedrock("amazon.nova-canvas-v1:0", stubbed)
    image, mask = _photo(120, 120)
    _run(_inpaint(image, mask[:120, :120] * 0 + _small_mask(), guidance=30, seed=2**32 - 1, resolution=256), backend)
    body = stubbed.body()
    assert body["taskType"] == "INPAINTING"
    config = body["imageGenerationConfig"]
    assert config["cfgScale"] == 10.0 and config["numberOfImages"] == 1
    assert 0 <= config["seed"] <= 2147483646
    sent, sent_mask = _decode(body["inPaintingParams"]["image"]), _decode(body["inPaintingParams"]["maskImage"])
    h, w = sent.shape[:2]
    assert min(h, w) >= 320 and h % 16 == 0 and w % 16 == 0 and h * w <= 4194304
    # black repaints, white keeps: the centre we marked is black, the corners we kept are white
    assert sent_mask[h // 2, w // 2] == 0 and sent_mask[0, 0] == 255
    assert set(np.unique(sent_mask)) == {0, 255}
    assert body["inPaintingParams"]["text"] == "a wooden bench"


def _small_mask():
    mask = np.zeros((120, 120), np.uint8)
    mask[40:80, 40:80] = 255
    return mask


def test_sd35_text_to_image_takes_the_nearest_aspect_ratio_and_image_to_image_the_strength():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer(_stability_answer(size=(1344, 768)))
    stubbed.answer(_stability_answer())
    backend = _bedrock("stability.sd3-5-large-v1:0", stubbed)
    result = _run(GenerationRequest("txt2img", prompt="a harbour at dawn", width=1024, height=576, seed=9), backend)
    body = stubbed.body()
    assert body == {"prompt": "a harbour at dawn", "mode": "text-to-image", "aspect_ratio": "16:9", "seed": 9,
                    "output_format": "png"}
    assert stubbed.calls[0]["modelId"] == "stability.sd3-5-large-v1:0"  # on demand: no profile needed
    assert result.images[0].shape == (576, 1024, 4)
    image, _ = _photo()
    _run(GenerationRequest("img2img", image=image, prompt="watercolour", strength=0.35, seed=1), backend)
    body = stubbed.body()
    assert body["mode"] == "image-to-image" and body["strength"] == 0.35 and "image" in body


def test_each_variant_is_its_own_call_with_its_own_seed():
    stubbed = Stubbed("bedrock-runtime")
    for seed in (7, 8, 9):
        stubbed.answer(_stability_answer(seed))
    backend = _bedrock("stability.stable-image-core-v1:1", stubbed)
    result = _run(GenerationRequest("txt2img", prompt="a fox", seed=7, variants=3), backend)
    assert [stubbed.body(i)["seed"] for i in range(3)] == [7, 8, 9] and result.seeds == [7, 8, 9]


def test_throttling_is_retried_with_growing_pauses_and_no_real_wait():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.fail("ThrottlingException", "Too many requests, please wait before trying again.", 429)
    stubbed.fail("ThrottlingException", "Too many requests, please wait before trying again.", 429)
    stubbed.answer(_stability_answer())
    sleeps = Sleeps()
    events = []
    image, mask = _photo()
    result = _run(_inpaint(image, mask), _bedrock("us.stability.stable-image-inpaint-v1:0", stubbed, sleeps),
                  progress=events.append)
    assert result.images
    assert sum(sleeps) == pytest.approx(1.0 + 2.0)  # 1 s, then 2 s: doubling (jitter pinned to its top)
    assert any("ThrottlingException" in e.message for e in events)


def test_throttling_that_never_ends_is_one_sentence():
    stubbed = Stubbed("bedrock-runtime")
    for _ in range(4):
        stubbed.fail("ThrottlingException", "Too many requests", 429)
    image, mask = _photo()
    with pytest.raises(BackendError, match="throttling requests for Stable Image Inpaint \\(tried 4 times\\)") as caught:
        _run(_inpaint(image, mask), _bedrock("stability.stable-image-inpaint-v1:0", stubbed))
    assert caught.value.retryable


@pytest.mark.parametrize("code, message, expected", [
    ("AccessDeniedException", "You don't have access to the model with the specified model ID.", "refused access"),
    ("ValidationException", "Malformed input request: #: extraneous key [foo] is not permitted",
     "rejected the request for Stable Image Inpaint: Malformed input"),
    ("ModelTimeoutException", "Model has timed out in processing the request.", "took too long"),
    ("ResourceNotFoundException", "Model not found.", "has no Stable Image Inpaint in this region"),
    ("ServiceQuotaExceededException", "Quota exceeded", "exceeds your Amazon Bedrock quota"),
])
def test_aws_errors_are_one_sentence_each(code, message, expected):
    stubbed = Stubbed("bedrock-runtime")
    stubbed.fail(code, message)
    image, mask = _photo()
    with pytest.raises(BackendError, match=expected) as caught:
        _run(_inpaint(image, mask), _bedrock("stability.stable-image-inpaint-v1:0", stubbed))
    assert "\n" not in str(caught.value) and SECRET not in str(caught.value)


def test_a_filtered_request_says_so():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer({"seeds": [1], "finish_reasons": ["Filter reason: prompt"], "images": []})
    image, mask = _photo()
    with pytest.raises(BackendError, match=r"filtered the request \(Filter reason: prompt\)"):
        _run(_inpaint(image, mask), _bedrock("stability.stable-image-inpaint-v1:0", stubbed))


def test_limits_are_enforced_before_anything_is_sent():
    stubbed = Stubbed("bedrock-runtime")
    image = np.zeros((100, 900, 3), np.uint8)
    mask = np.zeros((100, 900), np.uint8)
    mask[40:60, 20:880] = 255  # a 9:1 sliver
    with pytest.raises(BackendError, match="from 1:2.5 to 2.5:1"):
        _run(_inpaint(image, mask), _bedrock("stability.stable-image-inpaint-v1:0", stubbed))
    image, mask = _photo()
    with pytest.raises(BackendError, match="at most 1024 characters; this one has 1500"):
        _run(_inpaint(image, mask, prompt="x" * 1500), _bedrock("amazon.nova-canvas-v1:0", stubbed))
    with pytest.raises(BackendError, match="needs a prompt; Stable Image Erase Object removes"):
        _run(_inpaint(image, mask, prompt=""), _bedrock("stability.stable-image-inpaint-v1:0", stubbed))
    with pytest.raises(BackendError, match="does not do img2img"):
        _run(GenerationRequest("img2img", image=image, prompt="x"),
             _bedrock("stability.stable-image-inpaint-v1:0", stubbed))
    assert stubbed.calls == []


def test_erase_object_needs_no_prompt():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer(_stability_answer())
    image, mask = _photo()
    _run(_inpaint(image, mask, prompt=""), _bedrock("stability.stable-image-erase-object-v1:0", stubbed))
    assert set(stubbed.body()) == {"image", "mask", "seed", "output_format"}


def test_search_and_replace_and_control_sketch_bodies():
    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer(_stability_answer())
    stubbed.answer(_stability_answer())
    image, _ = _photo()
    request = GenerationRequest("img2img", image=image, prompt="a red bicycle", strength=0.6, seed=3)
    _run(request, _bedrock("stability.stable-image-search-replace-v1:0", stubbed, search_prompt="the blue car"))
    assert stubbed.body()["search_prompt"] == "the blue car" and stubbed.body()["prompt"] == "a red bicycle"
    _run(request, _bedrock("stability.stable-image-control-sketch-v1:0", stubbed))
    assert stubbed.body()["control_strength"] == 0.6


def test_the_cost_is_known_before_sending():
    stubbed = Stubbed("bedrock-runtime")
    job = BackendJob("txt2img", None, None, "x", "", 20, 7.0, 1.0, (1, 2), "Euler a", 1024, 1024)
    cost = _bedrock("stability.sd3-5-large-v1:0", stubbed).estimate(job)
    assert cost.dollars == pytest.approx(0.16) and "2 x $0.080" in cost.note and "price list of 2025" in cost.note
    nova = _bedrock("amazon.nova-canvas-v1:0", stubbed).estimate(job)
    assert nova.dollars == pytest.approx(0.08)
    unknown = _bedrock("stability.stable-image-inpaint-v1:0", stubbed).estimate(
        BackendJob("inpaint", None, None, "x", "", 20, 7.0, 1.0, (1,), "Euler a", 512, 512))
    assert "price not in SD Studio's table" in unknown.note
    assert stubbed.calls == []


def test_whole_image_services_remove_background_and_outpaint():
    stubbed = Stubbed("bedrock-runtime")
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:10, :10, 3] = 0
    stubbed.answer({"seeds": [0], "finish_reasons": [None], "images": [_png64(rgba)]})
    stubbed.answer({"seeds": [0], "finish_reasons": [None], "images": [_png64(np.zeros((64, 180, 3)))]})
    image = np.full((64, 80, 3), 128, np.uint8)
    cut = _bedrock("stability.stable-image-remove-background-v1:0", stubbed).edit(image)
    assert cut.shape == (64, 80, 4) and cut[0, 0, 3] == 0
    assert set(stubbed.body()) == {"image", "output_format"}
    wider = _bedrock("stability.stable-outpaint-v1:0", stubbed).edit(image, prompt="more beach", extend=(50, 50, 0, 0))
    assert wider.shape[:2] == (64, 180)
    body = stubbed.body()
    assert (body["left"], body["right"], body["up"], body["down"], body["prompt"]) == (50, 50, 0, 0, "more beach")


def test_model_ids_profiles_and_arns_find_the_catalog_entry():
    assert find_model("eu.stability.stable-image-inpaint-v1:0").label == "Stable Image Inpaint"
    assert find_model("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-canvas-v1:0").api \
        == "nova-canvas"
    with pytest.raises(BackendError, match="does not know the Bedrock model 'stability.sdxl'"):
        find_model("stability.sdxl")
    model = catalog()["stability.stable-image-inpaint-v1:0"]
    assert model.invoke_id("stability.stable-image-inpaint-v1:0", "eu-central-1") == \
        "eu.stability.stable-image-inpaint-v1:0"
    assert model.invoke_id("stability.stable-image-inpaint-v1:0", "ap-northeast-1") == \
        "apac.stability.stable-image-inpaint-v1:0"


def test_no_credentials_is_one_sentence_without_any_network(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    backend = BedrockBackend(BedrockSettings("stability.sd3-5-large-v1:0"), retry=aws.Retry(attempts=1),
                             endpoint_url="http://127.0.0.1:9")
    with pytest.raises(BackendError, match="No AWS credentials were found"):
        _run(GenerationRequest("txt2img", prompt="x"), backend)


def test_no_region_is_one_sentence(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(BackendError, match="Choose an AWS region"):
        _run(GenerationRequest("txt2img", prompt="x"),
             BedrockBackend(BedrockSettings("stability.sd3-5-large-v1:0")))


def test_unreachable_aws_is_one_sentence():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = BedrockBackend(BedrockSettings("stability.sd3-5-large-v1:0", region="us-west-2"),
                             retry=aws.Retry(attempts=1), endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(BackendError, match="Cannot reach Amazon Bedrock") as caught:
        _run(GenerationRequest("txt2img", prompt="x"), backend)
    assert caught.value.retryable


def test_no_secret_reaches_the_record_or_the_incident_log():
    from sd_studio.incidents import log_exception, log_path

    stubbed = Stubbed("bedrock-runtime")
    stubbed.answer(_stability_answer())
    stubbed.fail("AccessDeniedException", "User: arn:aws:iam::123456789012:user/me is not authorized")
    backend = _bedrock("stability.stable-image-inpaint-v1:0", stubbed)
    image, mask = _photo()
    result = _run(_inpaint(image, mask), backend)
    with pytest.raises(BackendError) as caught:
        _run(_inpaint(image, mask), backend)
    log_exception(caught.value, action="Generate")
    logged = log_path().read_text(encoding="utf-8")
    for secret in (SECRET, "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in result.parameters_text(0) and secret not in logged and secret not in str(caught.value)


# --- SageMaker ------------------------------------------------------------------------------------------------


def _jpeg64(pixels) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


def _sagemaker(stubbed, **settings):
    return SageMakerBackend(SageMakerSettings("jumpstart-sd2-inpaint", **settings), client=stubbed.client,
                            retry=aws.Retry(attempts=3, sleep=Sleeps(), jitter=lambda: 0.0))


def test_sagemaker_inpainting_payload_is_jumpstarts():
    stubbed = Stubbed("sagemaker-runtime")
    stubbed.answer({"generated_images": [_jpeg64(np.full((512, 512, 3), 90))], "prompt": "a cat"})
    image, mask = _photo()
    result = _run(_inpaint(image, mask, steps=25, guidance=6.5, negative_prompt="text"), _sagemaker(stubbed))
    params = stubbed.calls[0]
    assert params["EndpointName"] == "jumpstart-sd2-inpaint"
    assert params["ContentType"] == params["Accept"] == "application/json;jpeg"
    body = stubbed.body()
    assert {k: body[k] for k in ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "seed")} == \
        {"prompt": "a wooden bench", "negative_prompt": "text", "num_inference_steps": 25, "guidance_scale": 6.5,
         "seed": 42}
    sent = _decode(body["image"])
    assert sent.shape[:2] == _decode(body["mask_image"]).shape[:2]
    out = result.composite_onto(image)
    far = _far_from(mask, 4)
    assert np.array_equal(out[..., :3][far], image[far])
    assert result.parameters[0]["Backend"] == "Amazon SageMaker (us-west-2)"


def test_sagemaker_text_to_image_and_pixel_list_answers():
    stubbed = Stubbed("sagemaker-runtime")
    stubbed.answer({"generated_images": [np.full((64, 64, 3), 7).tolist()], "prompt": "x"})
    result = _run(GenerationRequest("txt2img", prompt="a kite", width=64, height=64, seed=4), _sagemaker(stubbed))
    body = stubbed.body()
    assert (body["width"], body["height"], body["num_images_per_prompt"]) == (64, 64, 1)
    assert stubbed.calls[0]["ContentType"] == "application/json"
    assert (result.images[0][..., :3] == 7).all()


@pytest.mark.parametrize("code, message, expected", [
    ("ValidationError", "Endpoint jumpstart-sd2-inpaint of account 123456789012 not found.", "has no SageMaker"),
    ("ModelError", "Received client error (400) from primary with message \"bad payload\"", "failed on Amazon"),
])
def test_sagemaker_errors_are_one_sentence(code, message, expected):
    stubbed = Stubbed("sagemaker-runtime")
    stubbed.fail(code, message)
    image, mask = _photo()
    with pytest.raises(BackendError, match=expected):
        _run(_inpaint(image, mask), _sagemaker(stubbed))


def test_sagemaker_refuses_img2img_and_bad_endpoint_names():
    stubbed = Stubbed("sagemaker-runtime")
    image, _ = _photo()
    with pytest.raises(BackendError, match="text to image and inpainting, not img2img"):
        _run(GenerationRequest("img2img", image=image, prompt="x"), _sagemaker(stubbed))
    with pytest.raises(BackendError, match="is not a SageMaker endpoint name"):
        SageMakerBackend(SageMakerSettings("my endpoint/../x"))
    assert stubbed.calls == []
