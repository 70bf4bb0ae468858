"""Host health: CPU load, thermal zones, memory, flight-root free space and GPU.

The recorder node samples this once a second (a timer) and writes the result
twice: as a ``host_health`` flight record and as diagnostics key/values.

Everything is read from files whose roots are parameters (``proc_root``,
``sys_root``), so tests can point the sampler at a fixture tree; free space
comes from :func:`os.statvfs` on the flight root itself.

GPU figures come through a :class:`GpuProvider`. The production provider,
:class:`NvmlGpuProvider`, imports ``pynvml`` lazily, so this module imports
(and the other fields keep being recorded) on a machine without NVML. Where
NVML is absent the sampler says so once, in an ``nvml_unavailable`` record and
one WARNING log line, and never asks again for the life of the sampler.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gps_denied_onboard.clock import Clock
from gps_denied_onboard.log import log_event
from gps_denied_onboard.records import FlightRecord, RecordSink

_LOG = logging.getLogger("gps_denied_onboard.fdr.host_health")

DEFAULT_PRODUCER = "fdr_recorder"


class GpuUnavailableError(Exception):
    """The GPU provider cannot report (no pynvml, no NVML library, no device).

    Internal to the sampler: it turns this into one ``nvml_unavailable`` record.

    Attributes:
        reason: short human-readable cause, recorded verbatim.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GpuSample:
    """One GPU's figures; a field is ``None`` where the driver does not report it."""

    index: int
    name: str
    util_pct: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    temp_c: float | None = None
    power_w: float | None = None


class GpuProvider(Protocol):
    """Where GPU figures come from (the NVML seam).

    ``open`` is called once, before the first ``sample``; either may raise
    :class:`GpuUnavailableError`, after which the provider is not used again.
    """

    def open(self) -> None: ...

    def sample(self) -> Sequence[GpuSample]: ...

    def close(self) -> None: ...


class NvmlGpuProvider:
    """GPU figures through NVML (``pynvml``, from the ``nvidia-ml-py`` package).

    ``pynvml`` is imported in :meth:`open`, not at module import, so this
    module is usable where it is not installed. A figure the device does not
    support (``NVMLError_NotSupported``, common on Jetson) is ``None``.
    """

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[tuple[int, str, Any]] = []

    def open(self) -> None:
        try:
            import pynvml
        except ImportError as err:
            raise GpuUnavailableError(f"pynvml not importable: {err}") from err
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError) as err:
            raise GpuUnavailableError(f"nvmlInit failed: {err}") from err
        try:
            count = int(pynvml.nvmlDeviceGetCount())
            handles = []
            for i in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                handles.append((i, _text(_maybe(pynvml, pynvml.nvmlDeviceGetName, handle)), handle))
        except pynvml.NVMLError as err:
            _shutdown_quietly(pynvml)
            raise GpuUnavailableError(f"NVML device enumeration failed: {err}") from err
        if not handles:
            _shutdown_quietly(pynvml)
            raise GpuUnavailableError("NVML reports no GPU devices")
        self._nvml = pynvml
        self._handles = handles

    def sample(self) -> Sequence[GpuSample]:
        nv = self._nvml
        if nv is None:
            raise GpuUnavailableError("NVML provider is not open")
        out = []
        for index, name, handle in self._handles:
            util = _maybe(nv, nv.nvmlDeviceGetUtilizationRates, handle)
            mem = _maybe(nv, nv.nvmlDeviceGetMemoryInfo, handle)
            temp = _maybe(nv, nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
            power_mw = _maybe(nv, nv.nvmlDeviceGetPowerUsage, handle)
            out.append(
                GpuSample(
                    index=index,
                    name=name,
                    util_pct=None if util is None else float(util.gpu),
                    mem_used_bytes=None if mem is None else int(mem.used),
                    mem_total_bytes=None if mem is None else int(mem.total),
                    temp_c=None if temp is None else float(temp),
                    power_w=None if power_mw is None else float(power_mw) / 1000.0,
                )
            )
        return out

    def close(self) -> None:
        if self._nvml is not None:
            _shutdown_quietly(self._nvml)
        self._nvml = None
        self._handles = []


def _maybe(nv: Any, fn: Any, *args: Any) -> Any:
    """Call an NVML query; a figure the device cannot give becomes ``None``."""
    try:
        return fn(*args)
    except nv.NVMLError:
        return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _shutdown_quietly(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except nv.NVMLError as err:
        log_event(_LOG, logging.DEBUG, "fdr.nvml_shutdown_failed", error=str(err))


@dataclass(frozen=True)
class WriterLag:
    """The recorder writer's lag figures, carried by each ``host_health`` record.

    Attributes:
        lag_ns: age of the oldest record not yet handed to the OS, at sampling.
        lag_max_ns: the largest such age the writer met since the previous sample.
        shed_lag: records shed so far for waiting longer than the lag bound.
    """

    lag_ns: int
    lag_max_ns: int
    shed_lag: int


@dataclass(frozen=True)
class HostHealth:
    """One host-health sample. ``None`` marks a figure that could not be read."""

    stamp_ns: int
    cpu_load_1m: float | None
    cpu_load_5m: float | None
    cpu_load_15m: float | None
    cpu_util_pct: float | None
    mem_total_bytes: int | None
    mem_available_bytes: int | None
    flight_root_free_bytes: int | None
    thermal_c: dict[str, float] = field(default_factory=dict)
    gpus: tuple[GpuSample, ...] = ()
    nvml: bool = False
    writer_lag: WriterLag | None = None

    def payload(self) -> dict[str, Any]:
        """The ``host_health`` record payload (keys from ``fdr_record_schema``).

        Several GPUs are folded into one figure per key (highest utilisation and
        temperature, summed memory and power), so each key stays one plottable
        number; diagnostics carry the per-device figures.
        """
        out: dict[str, Any] = {
            "cpu_load_1m": self.cpu_load_1m,
            "mem_total_bytes": self.mem_total_bytes,
            "mem_available_bytes": self.mem_available_bytes,
            "flight_root_free_bytes": self.flight_root_free_bytes,
            "thermal_c": dict(self.thermal_c),
            "nvml": self.nvml,
        }
        if self.writer_lag is not None:
            out["writer_lag_ns"] = self.writer_lag.lag_ns
            out["writer_lag_max_ns"] = self.writer_lag.lag_max_ns
            out["writer_shed_lag"] = self.writer_lag.shed_lag
        if self.gpus:
            out["gpu_util_pct"] = _fold(max, [g.util_pct for g in self.gpus])
            out["gpu_mem_used_bytes"] = _fold(sum, [g.mem_used_bytes for g in self.gpus])
            out["gpu_mem_total_bytes"] = _fold(sum, [g.mem_total_bytes for g in self.gpus])
            out["gpu_temp_c"] = _fold(max, [g.temp_c for g in self.gpus])
            out["gpu_power_w"] = _fold(sum, [g.power_w for g in self.gpus])
        return out

    def diagnostics(self) -> dict[str, str]:
        """Flat string key/values for a ``diagnostic_msgs/DiagnosticStatus``."""
        out: dict[str, str] = {
            "cpu_load_1m": _s(self.cpu_load_1m),
            "cpu_load_5m": _s(self.cpu_load_5m),
            "cpu_load_15m": _s(self.cpu_load_15m),
            "cpu_util_pct": _s(self.cpu_util_pct),
            "mem_total_bytes": _s(self.mem_total_bytes),
            "mem_available_bytes": _s(self.mem_available_bytes),
            "flight_root_free_bytes": _s(self.flight_root_free_bytes),
            "nvml": "available" if self.nvml else "unavailable",
        }
        if self.writer_lag is not None:
            out["writer_lag_ns"] = str(self.writer_lag.lag_ns)
            out["writer_lag_max_ns"] = str(self.writer_lag.lag_max_ns)
            out["writer_shed_lag"] = str(self.writer_lag.shed_lag)
        for zone, temp in sorted(self.thermal_c.items()):
            out[f"thermal_c.{zone}"] = _s(temp)
        for g in self.gpus:
            p = f"gpu{g.index}"
            out[f"{p}.name"] = g.name
            out[f"{p}.util_pct"] = _s(g.util_pct)
            out[f"{p}.mem_used_bytes"] = _s(g.mem_used_bytes)
            out[f"{p}.mem_total_bytes"] = _s(g.mem_total_bytes)
            out[f"{p}.temp_c"] = _s(g.temp_c)
            out[f"{p}.power_w"] = _s(g.power_w)
        return out


def _fold(fn: Any, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return fn(present) if present else None


def _s(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


class HostHealthSampler:
    """Reads the host's health and writes it as ``host_health`` records.

    Args:
        flight_root: the directory whose filesystem's free space is reported.
        clock: stamps the records (the node's ROS clock).
        sink: where ``host_health`` / ``nvml_unavailable`` records go.
        gpu: the GPU provider; defaults to :class:`NvmlGpuProvider`.
        proc_root: where ``loadavg``, ``stat`` and ``meminfo`` are read.
        sys_root: where ``class/thermal/thermal_zone*`` are read.
        producer: producer slug on the records.
        logger: where the one ``nvml_unavailable`` line goes.
        writer_lag: reads the recorder writer's :class:`WriterLag` (``None``: not reported).
    """

    def __init__(
        self,
        flight_root: Path,
        clock: Clock,
        sink: RecordSink,
        *,
        gpu: GpuProvider | None = None,
        proc_root: Path = Path("/proc"),
        sys_root: Path = Path("/sys"),
        producer: str = DEFAULT_PRODUCER,
        logger: logging.Logger = _LOG,
        writer_lag: Callable[[], WriterLag] | None = None,
    ) -> None:
        self._writer_lag = writer_lag
        self._flight_root = Path(flight_root)
        self._clock = clock
        self._sink = sink
        self._gpu: GpuProvider | None = gpu if gpu is not None else NvmlGpuProvider()
        self._gpu_opened = False
        self._proc = Path(proc_root)
        self._sys = Path(sys_root)
        self._producer = producer
        self._logger = logger
        self._prev_cpu: tuple[int, int] | None = None
        self.nvml_unavailable_reason: str | None = None

    def sample(self) -> HostHealth:
        """Read every source once; a source that fails reads as ``None``/empty."""
        load = self._loadavg()
        mem_total, mem_avail = self._meminfo()
        gpus = self._sample_gpus()
        return HostHealth(
            stamp_ns=self._clock.now_ns(),
            cpu_load_1m=load[0],
            cpu_load_5m=load[1],
            cpu_load_15m=load[2],
            cpu_util_pct=self._cpu_util(),
            mem_total_bytes=mem_total,
            mem_available_bytes=mem_avail,
            flight_root_free_bytes=self._free_bytes(),
            thermal_c=self._thermal(),
            gpus=tuple(gpus),
            nvml=self._gpu is not None and self._gpu_opened,
            writer_lag=self._writer_lag() if self._writer_lag is not None else None,
        )

    def tick(self) -> HostHealth:
        """Sample, write the ``host_health`` record, and return the sample."""
        health = self.sample()
        record = FlightRecord("host_health", self._producer, health.stamp_ns, health.payload())
        self._sink.emit(record)
        return health

    def close(self) -> None:
        """Release the GPU provider (NVML shutdown)."""
        if self._gpu is not None and self._gpu_opened:
            self._gpu.close()
        self._gpu_opened = False

    # --- sources -------------------------------------------------------------

    def _sample_gpus(self) -> Sequence[GpuSample]:
        if self._gpu is None:
            return ()
        try:
            if not self._gpu_opened:
                self._gpu.open()
                self._gpu_opened = True
            return self._gpu.sample()
        except GpuUnavailableError as err:
            self._gpu_unavailable(err.reason)
            return ()

    def _gpu_unavailable(self, reason: str) -> None:
        if self._gpu is not None and self._gpu_opened:
            self._gpu.close()
        self._gpu = None
        self._gpu_opened = False
        self.nvml_unavailable_reason = reason
        log_event(self._logger, logging.WARNING, "fdr.nvml_unavailable", reason=reason)
        payload = {"reason": reason}
        self._sink.emit(
            FlightRecord("nvml_unavailable", self._producer, self._clock.now_ns(), payload)
        )

    def _loadavg(self) -> tuple[float | None, float | None, float | None]:
        try:
            parts = (self._proc / "loadavg").read_text().split()
            return float(parts[0]), float(parts[1]), float(parts[2])
        except (OSError, ValueError, IndexError):
            return None, None, None

    def _cpu_util(self) -> float | None:
        """Busy share of all CPUs since the previous sample, from ``/proc/stat``."""
        try:
            with (self._proc / "stat").open() as f:
                first = f.readline().split()
        except OSError:
            return None
        if not first or first[0] != "cpu":
            return None
        try:
            ticks = [int(v) for v in first[1:]]
        except ValueError:
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        total = sum(ticks[:8])  # guest times are already inside user/nice
        prev, self._prev_cpu = self._prev_cpu, (total, idle)
        if prev is None or total <= prev[0]:
            return None
        busy = (total - prev[0]) - (idle - prev[1])
        return max(0.0, min(100.0, 100.0 * busy / (total - prev[0])))

    def _meminfo(self) -> tuple[int | None, int | None]:
        values: dict[str, int] = {}
        try:
            with (self._proc / "meminfo").open() as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in ("MemTotal", "MemAvailable"):
                        values[key] = int(rest.split()[0]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return values.get("MemTotal"), values.get("MemAvailable")

    def _free_bytes(self) -> int | None:
        path = self._flight_root
        while not path.exists() and path != path.parent:
            path = path.parent  # before the first flight the root may not exist yet
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _thermal(self) -> dict[str, float]:
        out: dict[str, float] = {}
        base = self._sys / "class" / "thermal"
        try:
            zones = sorted(base.glob("thermal_zone*"), key=lambda p: _zone_number(p.name))
        except OSError:
            return out
        for zone in zones:
            try:
                milli = int((zone / "temp").read_text().strip())
            except (OSError, ValueError):
                continue  # a zone whose sensor is off reads EINVAL/ENODATA
            try:
                name = (zone / "type").read_text().strip() or zone.name
            except OSError:
                name = zone.name
            if name in out:
                name = f"{name}.{zone.name}"
            out[name] = milli / 1000.0
        return out


def _zone_number(name: str) -> int:
    digits = name.removeprefix("thermal_zone")
    return int(digits) if digits.isdigit() else 1 << 30


def main(argv: list[str] | None = None) -> int:
    """Print one host-health sample as JSON (a hand check of NVML on a GPU machine)."""
    import argparse
    import json

    from gps_denied_onboard.clock import SystemClock
    from gps_denied_onboard.records import MemorySink

    ap = argparse.ArgumentParser(prog="python -m gps_denied_onboard.fdr.host_health")
    ap.add_argument("--flight-root", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    sink = MemorySink()
    sampler = HostHealthSampler(args.flight_root, SystemClock(), sink)
    try:
        health = sampler.tick()
    finally:
        sampler.close()
    out = {
        "records": [{"kind": r.kind, "payload": dict(r.payload)} for r in sink.records],
        "diagnostics": health.diagnostics(),
    }
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
