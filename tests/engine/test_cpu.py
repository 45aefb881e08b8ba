"""CPU capability detection from /proc/cpuinfo text, the thread policy, and fixed model input sizes."""

from __future__ import annotations

import pytest

from sd_studio.document.geometry import Extent
from sd_studio.engine.cpu.backend import fixed_sizes, nearest_size
from sd_studio.engine.cpu.processor import CpuInfo, configure_threads, cpu_info, parse_cpuinfo, thread_count


def cpuinfo_text(flags: str, cores: int, threads_per_core: int = 1, name: str = "Test CPU") -> str:
    """/proc/cpuinfo text for a one-socket machine with `cores` cores of `threads_per_core` threads."""
    blocks = []
    for cpu in range(cores * threads_per_core):
        blocks.append(
            f"processor\t: {cpu}\nmodel name\t: {name}\nphysical id\t: 0\n"
            f"core id\t\t: {cpu % cores}\nflags\t\t: fpu sse2 {flags}\n"
        )
    return "\n".join(blocks) + "\n"


def test_amx_processor_has_native_bf16():
    info = parse_cpuinfo(cpuinfo_text("avx512f amx_tile amx_bf16 avx512_bf16", 4, 2, "Xeon Sapphire"))
    assert info.name == "Xeon Sapphire"
    assert info.has_amx and info.has_native_bf16
    assert (info.physical_cores, info.logical_cores) == (4, 8)


def test_avx512_bf16_without_amx():
    info = parse_cpuinfo(cpuinfo_text("avx512f avx512_bf16", 2))
    assert info.has_native_bf16 and not info.has_amx


def test_plain_avx2_processor_has_no_bf16():
    info = parse_cpuinfo(cpuinfo_text("avx avx2 fma", 6, 2))
    assert not info.has_native_bf16
    assert info.physical_cores == 6


def test_cpuinfo_without_core_ids_counts_processors():
    text = "processor\t: 0\nflags\t: avx2\n\nprocessor\t: 1\nflags\t: avx2\n"
    info = parse_cpuinfo(text)
    assert (info.physical_cores, info.logical_cores) == (2, 2)


@pytest.mark.parametrize("cores, editor, cli", [(1, 1, 1), (2, 1, 2), (8, 7, 8)])
def test_thread_policy_leaves_a_core_for_the_editor(cores, editor, cli):
    assert thread_count(cores, for_editor=True) == editor
    assert thread_count(cores, for_editor=False) == cli


def test_configure_threads_sets_torch(monkeypatch):
    import torch

    monkeypatch.delenv("SD_STUDIO_THREADS", raising=False)
    before = torch.get_num_threads()
    info = CpuInfo("x", frozenset(), 3, 6)
    try:
        assert configure_threads(for_editor=True, info=info) == 2
        assert torch.get_num_threads() == 2
        assert configure_threads(for_editor=False, info=info) == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_this_machine_reads():
    info = cpu_info()
    assert info.physical_cores >= 1 and info.logical_cores >= info.physical_cores
    assert info.name


def test_fixed_sizes_are_few_multiples_of_64_near_the_area():
    sizes = fixed_sizes(512)
    assert Extent(512, 512) in sizes and len(sizes) <= 9
    for s in sizes:
        assert s.width % 64 == 0 and s.height % 64 == 0
        assert 0.8 < s.width * s.height / 512**2 < 1.2


def test_nearest_size_keeps_the_aspect():
    sizes = fixed_sizes(512)
    assert nearest_size(Extent(504, 512), sizes) == Extent(512, 512)
    wide = nearest_size(Extent(720, 400), sizes)
    assert wide.width > wide.height
    assert nearest_size(Extent(300, 720), sizes).height > 600


def test_plan_region_snaps_to_fixed_sizes():
    import numpy as np

    from sd_studio.engine.region import plan_region

    mask = np.zeros((600, 1000), np.uint8)
    mask[100:300, 200:700] = 255  # a wide hole
    sizes = fixed_sizes(512)
    free = plan_region(Extent(1000, 600), mask, resolution=512)
    snapped = plan_region(Extent(1000, 600), mask, resolution=512, fixed_sizes=sizes)
    assert free.target not in sizes  # the plain rule gives an odd size here...
    assert snapped.target in sizes and snapped.target.width > snapped.target.height  # ...the option a fixed one
    assert snapped.bounds == free.bounds  # only the model input size changes, not the crop
