"""Model downloads: speed against huggingface_hub's own hf_hub_download, and the bytes a cut download costs.

Both run against the stand-in hub and CDN of the tests (tests/engine/fake_hub.py) on 127.0.0.1, on one
random "weights" file, so the figures are the client's own cost (the network is not the limit here):
SD Studio hashes every byte as it arrives (sha256) and appends to a resumable partial file; hf_hub_download
checks only the size. The second figure cuts the connection half way and keeps the server down for the
rest of the call (as a lost Wi-Fi does), then downloads again: SD Studio continues with a Range request,
huggingface_hub 2.x starts again from zero.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 192 * 2**20  # bytes of the test file
REPEATS = 3


def _fake_hub():
    spec = importlib.util.spec_from_file_location("fake_hub", ROOT / "tests" / "engine" / "fake_hub.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_hub"] = module
    spec.loader.exec_module(module)
    return module


def _point_at(url: str) -> None:
    from huggingface_hub import constants

    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = False
    constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True


def main() -> None:
    """Print the download figures."""
    import os

    import numpy as np
    from huggingface_hub import hf_hub_download

    from sd_studio.engine.models import downloads
    from sd_studio.engine.models.catalog import load_catalog

    os.environ.pop("HF_HUB_OFFLINE", None)
    fake_hub = _fake_hub()
    data = np.random.default_rng(1).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    downloads._pause = lambda attempt, cancel, entry: None  # retries at once: the bench measures bytes and speed
    with fake_hub.FakeHub() as hub, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _point_at(hub.url)
        hub.add_repo("bench/model", {"model.safetensors": data})
        (entry,) = load_catalog(fake_hub.write_catalog(tmp / "catalog.json", [
            fake_hub.catalog_entry({"model.safetensors": data}, "bench/model", "checkpoint", "bench")]))

        ours, theirs = [], []
        for i in range(REPEATS):
            start = time.perf_counter()
            path = downloads.download_entry(entry, tmp / f"ours-{i}")
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            other = hf_hub_download("bench/model", "model.safetensors", local_dir=tmp / f"theirs-{i}")
            theirs.append(time.perf_counter() - start)
            assert Path(path).stat().st_size == Path(other).stat().st_size == SIZE
            path.unlink()
            Path(other).unlink()
        mib = SIZE / 2**20
        print(f"download {mib:.0f} MiB with sha256, SD Studio: {min(ours):.2f} s ({mib / min(ours):.0f} MiB/s) "
              f"vs hf_hub_download {min(theirs):.2f} s ({mib / min(theirs):.0f} MiB/s) (no checksum): "
              f"{min(ours) / min(theirs):.2f} x (target <= 1.5)")

        def cut_then_again(download) -> float:
            hub.served.clear()
            hub.faults.cut_after, hub.faults.statuses = SIZE // 2, [503] * 10
            try:
                download()
            except Exception:  # noqa: BLE001 - the first call is meant to fail
                pass
            hub.faults.cut_after, hub.faults.statuses = None, []
            download()
            return hub.served.get("model.safetensors", 0) / SIZE

        ours_sent = cut_then_again(lambda: downloads.download_entry(entry, tmp / "cut-ours"))
        theirs_sent = cut_then_again(
            lambda: hf_hub_download("bench/model", "model.safetensors", local_dir=tmp / "cut-theirs"))
        assert hashlib.sha256((tmp / "cut-ours" / "model.safetensors").read_bytes()).hexdigest() == \
            hashlib.sha256(data).hexdigest()
        print(f"bytes sent for a download cut half way and run again, SD Studio: {ours_sent:.2f} x the file "
              f"vs hf_hub_download {theirs_sent:.2f} x: {ours_sent / theirs_sent:.2f} (target 1.00 x the file)")


if __name__ == "__main__":
    main()
