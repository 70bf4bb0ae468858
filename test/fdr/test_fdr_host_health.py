"""Host health sampling: /proc and /sys fixture trees, the real host, and both NVML paths."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gps_denied_onboard.clock import ManualClock
from gps_denied_onboard.fdr.host_health import (
    GpuSample,
    GpuUnavailableError,
    HostHealthSampler,
    NvmlGpuProvider,
)
from gps_denied_onboard.record_schema import check_payload
from gps_denied_onboard.records import MemorySink


def _fixture_tree(root: Path) -> tuple[Path, Path]:
    proc = root / "proc"
    sys_ = root / "sys"
    proc.mkdir(parents=True)
    (proc / "loadavg").write_text("1.50 0.75 0.25 2/345 6789\n")
    (proc / "meminfo").write_text(
        "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    3000000 kB\n"
    )
    (proc / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n")
    thermal = sys_ / "class" / "thermal"
    for n, (kind, milli) in enumerate(
        [("cpu-thermal", "45500"), ("gpu-thermal", "51000"), ("cpu-thermal", "47000")]
    ):
        zone = thermal / f"thermal_zone{n}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    broken = thermal / "thermal_zone3"  # a zone whose sensor is off: temp unreadable
    broken.mkdir()
    (broken / "type").write_text("pmic\n")
    return proc, sys_


class _NoGpu:
    """A provider that reports NVML absent, as the real one does on a machine without it."""

    def __init__(self) -> None:
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        raise GpuUnavailableError("pynvml not importable: No module named 'pynvml'")

    def sample(self) -> list[GpuSample]:
        raise AssertionError("sample() after a failed open()")

    def close(self) -> None:
        pass


def test_fixture_tree_reads_load_memory_thermal_and_free_space(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    proc, sys_ = _fixture_tree(tmp_path / "host")
    sink = MemorySink()
    sampler = HostHealthSampler(
        tmp_path / "flights", manual_clock, sink, gpu=_NoGpu(), proc_root=proc, sys_root=sys_
    )

    health = sampler.tick()

    assert health.cpu_load_1m == 1.5
    assert health.cpu_load_15m == 0.25
    assert health.mem_total_bytes == 8_000_000 * 1024
    assert health.mem_available_bytes == 3_000_000 * 1024
    assert health.thermal_c == {
        "cpu-thermal": 45.5,
        "gpu-thermal": 51.0,
        "cpu-thermal.thermal_zone2": 47.0,
    }
    assert health.flight_root_free_bytes is not None and health.flight_root_free_bytes > 0
    records = sink.of_kind("host_health")
    assert len(records) == 1
    assert records[0].stamp_ns == manual_clock.now_ns()
    assert check_payload("host_health", records[0].payload) == frozenset()
    assert records[0].payload["nvml"] is False


def test_cpu_utilisation_comes_from_proc_stat_deltas(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    proc, sys_ = _fixture_tree(tmp_path / "host")
    sampler = HostHealthSampler(
        tmp_path, manual_clock, MemorySink(), gpu=_NoGpu(), proc_root=proc, sys_root=sys_
    )
    assert sampler.sample().cpu_util_pct is None  # no previous sample yet
    # +300 busy (user+system), +100 idle since the first sample -> 75 %
    (proc / "stat").write_text("cpu  250 0 250 900 0 0 0 0 0 0\n")
    assert sampler.sample().cpu_util_pct == pytest.approx(75.0)


def test_missing_sources_read_as_none_not_errors(tmp_path: Path, manual_clock: ManualClock) -> None:
    sampler = HostHealthSampler(
        tmp_path,
        manual_clock,
        MemorySink(),
        gpu=_NoGpu(),
        proc_root=tmp_path / "no-proc",
        sys_root=tmp_path / "no-sys",
    )
    health = sampler.tick()
    assert health.cpu_load_1m is None
    assert health.mem_total_bytes is None
    assert health.thermal_c == {}
    assert health.diagnostics()["cpu_load_1m"] == "n/a"


def test_real_host_sample_has_load_memory_and_free_space(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    sampler = HostHealthSampler(tmp_path / "not-yet-created", manual_clock, MemorySink())
    health = sampler.tick()
    assert health.cpu_load_1m is not None
    assert health.mem_total_bytes and health.mem_available_bytes
    assert 0 < health.mem_available_bytes <= health.mem_total_bytes
    assert health.flight_root_free_bytes and health.flight_root_free_bytes > 0
    sampler.close()


def test_nvml_absent_for_real_says_so_once_and_keeps_recording(
    tmp_path: Path, manual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The real provider on a machine without pynvml/NVML (as these are)."""
    try:
        import pynvml  # noqa: F401

        pytest.skip("pynvml is installed here; the absent path is covered by the next test")
    except ImportError:
        pass
    sink = MemorySink()
    sampler = HostHealthSampler(tmp_path, manual_clock, sink, gpu=NvmlGpuProvider())
    with caplog.at_level(logging.WARNING, logger="gps_denied_onboard.fdr.host_health"):
        for _ in range(5):
            manual_clock.advance_s(1.0)
            health = sampler.tick()
    unavailable = sink.of_kind("nvml_unavailable")
    assert len(unavailable) == 1
    assert "pynvml" in unavailable[0].payload["reason"]
    assert check_payload("nvml_unavailable", unavailable[0].payload) == frozenset()
    lines = [r for r in caplog.records if "nvml_unavailable" in r.getMessage()]
    assert len(lines) == 1
    assert len(sink.of_kind("host_health")) == 5
    assert health.mem_total_bytes and health.nvml is False and health.gpus == ()
    assert "gpu_util_pct" not in sink.of_kind("host_health")[-1].payload


def test_nvml_library_missing_says_so_once(tmp_path: Path, manual_clock: ManualClock) -> None:
    """pynvml importable but libnvidia-ml.so absent: nvmlInit raises NVMLError.

    The stand-in ``pynvml`` here raises exactly what the real binding raises
    when it cannot load the shared library (an ``NVMLError`` subclass).
    """
    fake = _fake_pynvml(init_error=True)
    sink = MemorySink()
    with _injected_pynvml(fake):
        sampler = HostHealthSampler(tmp_path, manual_clock, sink, gpu=NvmlGpuProvider())
        sampler.tick()
        sampler.tick()
    assert [r.payload["reason"] for r in sink.of_kind("nvml_unavailable")] == [
        "nvmlInit failed: NVML Shared Library Not Found"
    ]
    assert len(sink.of_kind("host_health")) == 2


def test_nvml_present_gpu_fields_recorded(tmp_path: Path, manual_clock: ManualClock) -> None:
    """NVML present. The true edge is the NVML library itself; this test injects an
    edge fake: a stand-in module as ``pynvml`` in ``sys.modules`` that returns fixed
    values through the real binding's function names and units (mW, bytes, degC).
    The real library is checked on a GPU machine by hand with
    ``python -m gps_denied_onboard.fdr.host_health`` (prints one sample as JSON).
    """
    fake = _fake_pynvml()
    sink = MemorySink()
    with _injected_pynvml(fake):
        sampler = HostHealthSampler(tmp_path, manual_clock, sink, gpu=NvmlGpuProvider())
        health = sampler.tick()
        sampler.close()
    assert fake.calls["init"] == 1 and fake.calls["shutdown"] == 1
    assert sink.of_kind("nvml_unavailable") == []
    payload = sink.of_kind("host_health")[0].payload
    assert check_payload("host_health", payload) == frozenset()
    assert payload["nvml"] is True
    assert payload["gpu_util_pct"] == 87.0  # max over devices
    assert payload["gpu_mem_used_bytes"] == 3 * 2**30  # summed
    assert payload["gpu_mem_total_bytes"] == 24 * 2**30
    assert payload["gpu_temp_c"] == 66.0
    assert payload["gpu_power_w"] == pytest.approx(210.5)  # device 1 cannot say
    diag = health.diagnostics()
    assert diag["gpu0.name"] == "NVIDIA Test GPU"
    assert diag["gpu0.power_w"] == "210.5"
    assert diag["gpu1.power_w"] == "n/a"  # NotSupported on that device -> None
    assert diag["nvml"] == "available"


# --- the pynvml edge fake ------------------------------------------------------


class _NVMLError(Exception):
    pass


class _NVMLLibraryNotFoundError(_NVMLError):
    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


class _NVMLNotSupportedError(_NVMLError):
    def __str__(self) -> str:
        return "Not Supported"


def _fake_pynvml(init_error: bool = False) -> Any:
    mod: Any = types.ModuleType("pynvml")
    calls = {"init": 0, "shutdown": 0}
    mod.calls = calls
    mod.NVMLError = _NVMLError
    mod.NVML_TEMPERATURE_GPU = 0
    devices = [
        {
            "name": b"NVIDIA Test GPU",
            "util": 87,
            "used": 2 * 2**30,
            "total": 16 * 2**30,
            "temp": 66,
            "power_mw": 210_500,
        },
        {
            "name": "NVIDIA Other",
            "util": 10,
            "used": 2**30,
            "total": 8 * 2**30,
            "temp": 40,
            "power_mw": None,
        },
    ]

    def nvmlInit() -> None:
        calls["init"] += 1
        if init_error:
            raise _NVMLLibraryNotFoundError()

    def nvmlShutdown() -> None:
        calls["shutdown"] += 1

    def power(h: dict[str, Any]) -> int:
        if h["power_mw"] is None:
            raise _NVMLNotSupportedError()
        return int(h["power_mw"])

    mod.nvmlInit = nvmlInit
    mod.nvmlShutdown = nvmlShutdown
    mod.nvmlDeviceGetCount = lambda: len(devices)
    mod.nvmlDeviceGetHandleByIndex = lambda i: devices[i]
    mod.nvmlDeviceGetName = lambda h: h["name"]
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h["util"], memory=0)
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        used=h["used"], total=h["total"], free=h["total"] - h["used"]
    )
    mod.nvmlDeviceGetTemperature = lambda h, sensor: h["temp"]
    mod.nvmlDeviceGetPowerUsage = power
    return mod


class _injected_pynvml:  # noqa: N801 - reads as a context manager
    def __init__(self, module: Any) -> None:
        self._module = module
        self._saved: Any = None

    def __enter__(self) -> Any:
        self._saved = sys.modules.get("pynvml")
        sys.modules["pynvml"] = self._module
        return self._module

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            sys.modules.pop("pynvml", None)
        else:
            sys.modules["pynvml"] = self._saved


@pytest.fixture(autouse=True)
def _no_leaked_pynvml() -> Iterator[None]:
    before = sys.modules.get("pynvml")
    yield
    assert sys.modules.get("pynvml") is before


def test_provider_module_imports_in_isolation() -> None:
    """host_health imports with nothing else from the package loaded first."""
    code = (
        "import sys; import gps_denied_onboard.fdr.host_health as h; "
        "assert 'pynvml' not in sys.modules; assert 'rclpy' not in sys.modules; "
        "p = h.NvmlGpuProvider(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_writer_lag_is_a_recorded_figure_of_host_health(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    from gps_denied_onboard.fdr.host_health import WriterLag
    from gps_denied_onboard.record_schema import check_payload

    figures = iter([WriterLag(5_000_000, 1_200_000_000, 4096), WriterLag(0, 0, 4096)])
    sink = MemorySink()
    sampler = HostHealthSampler(
        tmp_path, manual_clock, sink, gpu=_NoGpu(), writer_lag=lambda: next(figures)
    )
    sampler.tick()
    sampler.tick()
    first, second = sink.of_kind("host_health")
    assert check_payload("host_health", first.payload) == frozenset()
    assert (first.payload["writer_lag_ns"], first.payload["writer_lag_max_ns"]) == (
        5_000_000,
        1_200_000_000,
    )
    assert first.payload["writer_shed_lag"] == 4096
    assert second.payload["writer_lag_max_ns"] == 0
