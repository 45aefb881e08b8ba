"""Engines beyond the laptop on the command line: --backend for the generation commands, and `sd-studio backends`.

`sd-studio backends test URL...` checks ComfyUI servers (device, version, checkpoints, samplers);
`sd-studio backends models` lists the Bedrock models SD Studio knows with their prices;
`sd-studio backends edit IMAGE -o OUT --backend bedrock:MODEL` runs a whole-image Bedrock service
(remove background, outpaint, upscale).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add `sd-studio backends` and its commands."""
    from sd_studio.cli_generate import _add

    parser = _add(subparsers, "backends", "Check ComfyUI servers, list Bedrock models, run whole-image services.")
    commands = parser.add_subparsers(dest="backends_command", metavar="COMMAND", required=True)
    test = _add(commands, "test", "Connect to ComfyUI servers and show their GPU, checkpoints and samplers.")
    test.add_argument("urls", nargs="+", metavar="URL", help="http(s)://HOST:PORT of each server")
    test.set_defaults(func=run_test)
    models = _add(commands, "models", "List the Amazon Bedrock image models SD Studio can call, with prices.")
    models.set_defaults(func=run_models)
    edit = _add(commands, "edit", "Remove the background, outpaint or upscale IMAGE with a Bedrock service.")
    edit.add_argument("image", metavar="IMAGE")
    edit.add_argument("-o", "--output", required=True, metavar="OUT", help="the image to write (.png keeps alpha)")
    edit.add_argument("--backend", required=True, metavar="bedrock:MODEL_ID", help="the Bedrock service to run")
    edit.add_argument("--prompt", default="", metavar="P", help="what the image shows (upscale, outpaint)")
    edit.add_argument("--negative-prompt", default="", metavar="N")
    edit.add_argument("--seed", type=int, default=0, metavar="N")
    edit.add_argument("--extend", default="0,0,0,0", metavar="L,R,U,D", help="pixels to add on each side (outpaint)")
    edit.add_argument("--region", default="", metavar="REGION", help="AWS region (default: your AWS configuration)")
    edit.set_defaults(func=run_edit)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --region and --search for inpaint, img2img and txt2img."""
    parser.add_argument(
        "--backend", default="local", metavar="SPEC",
        help="where diffusion runs: local (default), comfyui=URL[,URL...] (a server or a pool; token from "
             "SD_STUDIO_COMFYUI_TOKEN), bedrock:MODEL_ID or sagemaker:ENDPOINT",
    )
    parser.add_argument("--region", default="", metavar="REGION",
                        help="AWS region for bedrock/sagemaker (default: your AWS configuration)")
    parser.add_argument("--search", default="", metavar="TEXT",
                        help="what Bedrock's Search and Replace looks for (the prompt says what replaces it)")


def open_from_args(args: argparse.Namespace):
    """The Backend --backend names, or None for this computer."""
    import dataclasses

    from sd_studio.engine.backends.settings import BedrockSettings, open_backend, parse_backend

    settings = parse_backend(getattr(args, "backend", "local"), region=getattr(args, "region", ""))
    if settings is None:
        return None
    if isinstance(settings, BedrockSettings) and getattr(args, "search", ""):
        settings = dataclasses.replace(settings, search_prompt=args.search)
    return open_backend(settings)


def prepare_request(request, backend, quiet: bool):
    """The request completed for `backend` (its model when none is named); says what it runs on and costs.

    The backend is closed when this fails.
    """
    from sd_studio.engine.backends.base import BackendJob, for_backend

    try:
        request = for_backend(request, backend)
    except BaseException:
        backend.close()
        raise
    if quiet:
        return request
    note = f"running on {backend.label}"
    job = BackendJob(request.mode, None, None, request.prompt, request.negative_prompt, request.steps,
                     request.guidance, request.strength or 1.0, tuple(range(request.variants)), request.scheduler,
                     request.width, request.height)
    cost = backend.estimate(job)
    if cost is not None:
        note += f"; {cost.note}"
    print(f"sd-studio: {note}", file=sys.stderr)
    return request


def run_test(args: argparse.Namespace) -> int:
    """Handler of `backends test`: one block per server; exit 2 when any of them fails."""
    from sd_studio.engine.backends.base import BackendError
    from sd_studio.engine.backends.comfyui.backend import ComfyBackend
    from sd_studio.engine.backends.settings import parse_backend

    backend = ComfyBackend(parse_backend("comfyui=" + ",".join(args.urls)).servers)
    try:
        reports = backend.test()
    finally:
        backend.close()
    failed = 0
    for label, report in zip(backend.servers, reports):
        if isinstance(report, BackendError):
            print(f"sd-studio: error: {report}", file=sys.stderr)
            failed += 1
            continue
        print(f"{report.label}: {report.device}" + (f", ComfyUI {report.version}" if report.version else ""))
        print(f"  checkpoints ({len(report.checkpoints)}): {', '.join(report.checkpoints) or 'none'}")
        print(f"  samplers: {', '.join(report.samplers) or 'none of ours'}")
        print(f"  modes: {', '.join(report.modes) or 'none'}; progress socket: {'yes' if report.websocket else 'no'}")
    return 2 if failed else 0


def run_models(args: argparse.Namespace) -> int:
    """Handler of `backends models`: the Bedrock catalog, one model a line."""
    from sd_studio.document.geometry import Extent
    from sd_studio.engine.backends.bedrock.catalog import catalog, catalog_data

    for model in catalog().values():
        price = model.price_per_image(Extent(1024, 1024))
        shown = f"${price:.3f}/image" if price is not None else "price: see AWS"
        modes = ", ".join(model.modes) or "whole image (backends edit)"
        print(f"{model.id}\t{model.label}\t{modes}\t{shown}")
    print(f"prices: {catalog_data()['_as_of']}", file=sys.stderr)
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """Handler of `backends edit`: read IMAGE, run the service, write OUT (atomically)."""
    import numpy as np

    from sd_studio.cli_generate import _check_output, _read_image, _write_image
    from sd_studio.document.io.parameters import format_parameters
    from sd_studio.engine.backends.settings import BedrockSettings, open_backend, parse_backend

    output = Path(args.output)
    _check_output(output)
    settings = parse_backend(args.backend, region=args.region)
    if not isinstance(settings, BedrockSettings):
        from sd_studio.errors import GenerationError

        raise GenerationError("backends edit runs Amazon Bedrock services: use --backend bedrock:MODEL_ID.")
    try:
        extend = tuple(int(v) for v in args.extend.split(","))
        if len(extend) != 4:
            raise ValueError
    except ValueError:
        from sd_studio.errors import GenerationError

        raise GenerationError(f"--extend takes four whole numbers L,R,U,D, not {args.extend!r}.") from None
    backend = open_backend(settings)
    image = _read_image(Path(args.image))
    result = backend.edit(np.ascontiguousarray(image[..., :3]), prompt=args.prompt,
                          negative_prompt=args.negative_prompt, seed=args.seed, extend=extend)
    parameters = format_parameters({"prompt": args.prompt, "negative_prompt": args.negative_prompt, "seed": args.seed,
                                    "model": backend.model.id, **backend.record(None)})
    _write_image(output, result, parameters)
    print(f"{output} ({result.shape[1]} x {result.shape[0]})", file=sys.stderr)
    return 0
