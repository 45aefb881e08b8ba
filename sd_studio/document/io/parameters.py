"""Generation parameters as text: AUTOMATIC1111's `parameters` format, and summaries of other tools'.

The A1111 text is the de-facto interchange format that image viewers, Civitai and sd-parsers read:

    a castle on a hill
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: abc, Model: sd15

Values holding a comma, a colon or a newline are written as JSON strings, exactly as A1111 does.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

# (our key, A1111's name), in the order A1111 writes them.
_FIELDS = (
    ("steps", "Steps"),
    ("sampler", "Sampler"),
    ("cfg_scale", "CFG scale"),
    ("seed", "Seed"),
    ("size", "Size"),
    ("model_hash", "Model hash"),
    ("model", "Model"),
    ("denoising_strength", "Denoising strength"),
)
_NAME_OF = dict(_FIELDS)
_KEY_OF = {name: key for key, name in _FIELDS}
_INTS = {"steps", "seed", "width", "height"}
_FLOATS = {"cfg_scale", "denoising_strength"}
_PROMPTS = ("prompt", "negative_prompt")

# A1111's own pattern (modules/infotext_utils.py), so we split lines exactly as it does.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"


def format_parameters(p: dict[str, Any]) -> str:
    """The A1111 `parameters` text for these settings.

    Known keys: prompt, negative_prompt, steps, sampler, cfg_scale, seed, width, height,
    model_hash, model, denoising_strength. Any other key is appended as `Key: value` with the key
    as given (e.g. {"Schedule type": "Karras"}). None values and an empty negative prompt are left
    out. A key holding ',', ':' or a newline raises ValueError (it cannot be read back).
    """
    prompt = str(p.get("prompt") or "")
    negative = str(p.get("negative_prompt") or "")
    values: dict[str, Any] = {}
    for key, value in p.items():
        if key in _PROMPTS or key in ("width", "height") or value is None:
            continue
        name = _NAME_OF.get(key, key)
        if not isinstance(key, str) or not key.strip() or any(c in key for c in ",:\n\""):
            raise ValueError(f"a parameter name cannot hold ',', ':', '\"' or a newline: {key!r}")
        values[name] = value
    if p.get("width") is not None and p.get("height") is not None:
        values["Size"] = f"{int(p['width'])}x{int(p['height'])}"
    order = [name for _, name in _FIELDS if name in values] + [n for n in values if n not in _KEY_OF]
    settings = ", ".join(f"{name}: {_quote(_text(values[name]))}" for name in order)
    text = prompt
    if negative:
        text += f"\n{_NEGATIVE} {negative}"
    if settings:
        text += f"\n{settings}"
    return text.strip()


def parse_parameters(text: str) -> dict[str, Any]:
    """The settings in an A1111 `parameters` text (the inverse of format_parameters).

    Returns prompt and negative_prompt (always, maybe empty), the known keys with steps, seed,
    width and height as int and cfg_scale, denoising_strength as float (kept as text when they do
    not parse), and every other `Key: value` under its own name, unquoted. Size becomes width and
    height. Text that other tools append (Hashes, Lora hashes, Version...) is kept, never refused.
    """
    lines = text.strip().split("\n")
    last = lines[-1] if lines else ""
    if len(_PARAM.findall(last)) >= 3:
        lines = lines[:-1]
    else:
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE):].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, Any] = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}
    for name, raw in _PARAM.findall(last):
        value = _unquote(raw.strip())
        key = _KEY_OF.get(name, name)
        size = _SIZE.match(value) if key == "size" else None
        if size:
            result["width"], result["height"] = int(size.group(1)), int(size.group(2))
        elif key in _INTS:
            result[key] = _number(value, int)
        elif key in _FLOATS:
            result[key] = _number(value, float)
        else:
            result[key] = value
    return result


def describe_metadata(raw: dict[str, str]) -> list[str]:
    """Readable lines summarising the generation metadata found in a file (for `info`).

    Understands A1111 `parameters` text, ComfyUI `prompt` (API graph) and `workflow` (UI graph)
    JSON, InvokeAI `invokeai_metadata` and NovelAI's JSON `Comment`; any other key is shown
    shortened, as text.
    """
    lines: list[str] = []
    for key, value in raw.items():
        if key == "parameters":
            lines += _describe_a1111(value)
        elif key == "prompt" and _json(value) is not None:
            lines += _describe_comfy_prompt(_json(value))
        elif key == "workflow" and _json(value) is not None:
            if "prompt" in raw and _json(raw["prompt"]) is not None:
                nodes = _json(value).get("nodes", []) if isinstance(_json(value), dict) else []
                lines.append(f"ComfyUI workflow: {len(nodes)} nodes")
            else:
                lines += _describe_comfy_workflow(_json(value))
        elif key == "invokeai_metadata" and isinstance(_json(value), dict):
            lines += _describe_invokeai(_json(value))
        elif key in ("Comment", "comment") and isinstance(_json(value), dict) and "prompt" in _json(value):
            lines += _describe_novelai(_json(value))
        else:
            lines.append(f"{key}: {_shorten(value)}")
    return lines


# -- A1111 ------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quote(text: str) -> str:
    # A1111's rule (',', ':' or newline), plus what its reader would otherwise change: a leading
    # quote (it would be unquoted) and surrounding spaces (they would be stripped).
    plain = "," not in text and "\n" not in text and ":" not in text
    if plain and not text.startswith('"') and text == text.strip():
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text


def _describe_a1111(text: str) -> list[str]:
    p = parse_parameters(text)
    lines = ["Generation parameters (A1111 format):"]
    lines.append(f"  Prompt: {_shorten(p.pop('prompt'))}")
    negative = p.pop("negative_prompt")
    if negative:
        lines.append(f"  Negative prompt: {_shorten(negative)}")
    for key, value in p.items():
        if key == "width" and "height" in p:
            key, value = "size", f"{value}x{p['height']}"
        elif key == "height" and "width" in p:
            continue
        lines.append(f"  {_NAME_OF.get(key, key)}: {_shorten(_text(value))}")
    return lines


# -- ComfyUI ----------------------------------------------------------------------------------
def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _describe_comfy_prompt(graph: Any) -> list[str]:
    if not isinstance(graph, dict):
        return [f"ComfyUI prompt: {_shorten(json.dumps(graph))}"]
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    lines = [f"ComfyUI prompt: {len(nodes)} nodes"]
    for node in nodes.values():
        kind = str(node.get("class_type", ""))
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if kind.startswith("CheckpointLoader") and "ckpt_name" in inputs:
            lines.append(f"  Checkpoint: {inputs['ckpt_name']}")
        elif kind.startswith("KSampler"):
            lines.append("  Sampler: " + _settings(inputs, ("sampler_name", "scheduler", "steps", "cfg", "seed", "noise_seed", "denoise")))
            for role, label in (("positive", "Prompt"), ("negative", "Negative prompt")):
                text = _follow_text(nodes, inputs.get(role))
                if text:
                    lines.append(f"  {label}: {_shorten(text)}")
    return lines


def _follow_text(nodes: dict[str, dict], link: Any, depth: int = 0) -> str | None:
    # A link is [node_id, output_index]; conditioning may pass through a few nodes
    # (ConditioningCombine, ControlNetApply...) before reaching the text encoder.
    if depth > 8 or not (isinstance(link, list) and link):
        return None
    node = nodes.get(str(link[0]))
    if node is None:
        return None
    inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
    for name in ("text", "text_g", "text_l", "prompt"):
        if isinstance(inputs.get(name), str):
            return inputs[name]
    for name in ("text", "conditioning", "conditioning_1", "conditioning_to", "positive", "negative"):
        found = _follow_text(nodes, inputs.get(name), depth + 1)
        if found:
            return found
    return None


def _describe_comfy_workflow(workflow: Any) -> list[str]:
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    if not isinstance(nodes, list):
        return [f"ComfyUI workflow: {_shorten(json.dumps(workflow))}"]
    lines = [f"ComfyUI workflow: {len(nodes)} nodes"]
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = str(node.get("type", ""))
        widgets = node.get("widgets_values")
        if not isinstance(widgets, list) or not widgets:
            continue
        if kind.startswith("CheckpointLoader"):
            lines.append(f"  Checkpoint: {widgets[0]}")
        elif kind.startswith("CLIPTextEncode") and isinstance(widgets[0], str):
            lines.append(f"  Text ({node.get('title') or kind}): {_shorten(widgets[0])}")
        elif kind == "KSampler" and len(widgets) >= 6:
            seed, _, steps, cfg, sampler, scheduler = widgets[:6]
            lines.append(f"  Sampler: sampler_name {sampler}, scheduler {scheduler}, steps {steps}, cfg {cfg}, seed {seed}")
    return lines


# -- InvokeAI ---------------------------------------------------------------------------------
def _describe_invokeai(meta: dict) -> list[str]:
    lines = ["Generation parameters (InvokeAI):"]
    for key, label in (("positive_prompt", "Prompt"), ("negative_prompt", "Negative prompt")):
        if meta.get(key):
            lines.append(f"  {label}: {_shorten(str(meta[key]))}")
    model = meta.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    if model:
        lines.append(f"  Model: {model}")
    settings = _settings(meta, ("scheduler", "steps", "cfg_scale", "seed", "width", "height", "strength"))
    if settings:
        lines.append(f"  Settings: {settings}")
    return lines


# -- NovelAI ----------------------------------------------------------------------------------
def _describe_novelai(meta: dict) -> list[str]:
    lines = ["Generation parameters (NovelAI):", f"  Prompt: {_shorten(str(meta.get('prompt', '')))}"]
    if meta.get("uc"):
        lines.append(f"  Negative prompt: {_shorten(str(meta['uc']))}")
    settings = _settings(meta, ("sampler", "steps", "scale", "seed", "width", "height", "strength"))
    if settings:
        lines.append(f"  Settings: {settings}")
    return lines


# -- shared -----------------------------------------------------------------------------------
def _settings(values: dict, names: Iterable[str]) -> str:
    return ", ".join(f"{name} {values[name]}" for name in names if name in values and not isinstance(values[name], (list, dict)))


def _shorten(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split("\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
