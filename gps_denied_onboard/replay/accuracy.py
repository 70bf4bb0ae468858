"""How good were the estimator's fixes? A flight's fixes scored against its ground truth.

ROS-free. Inputs are plain values: the truth file the sample-flight generator
writes (``truth.csv``), the fixes (stamp, lat/lon, the ``PositionFix``
ENU position covariance, and the velocity with its covariance where it carried
one), the frames the estimator rejected (stamp, reason),
the GNSS-loss time and the arrival times of GPS_INPUT at the flight
controller. :func:`evaluate` returns an :class:`AccuracyReport`, which renders
itself as text lines and as a JSON-able dict; :mod:`.report_plots` draws it.

Conventions:

- a *frame* is a fix or a reject; frames at or after ``gnss_loss_ns`` are
  "after the loss";
- the error of a fix is the fix minus the truth interpolated at the fix's
  stamp, in metres east and north of the truth (geodesic, pyproj's ``Geod``);
- sigma coverage per axis: the fraction of fixes with ``|error_east| <= k·sigma_east``
  (``sigma_east² = covariance[0]``), likewise north (``covariance[4]``);
- a fix's velocity error is its velocity minus the truth's at its stamp
  (:mod:`.velocity`), scored over the fixes that carried one;
- the longest gap without a fix runs between consecutive fixes, or from the
  first frame to the first fix, or from the last fix to the last frame.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod

from gps_denied_onboard.replay.errors import ReplayError
from gps_denied_onboard.replay.stats import coverage, fmt, quantile, share
from gps_denied_onboard.replay.velocity import VelocityFigures, velocity_figures

TRUTH_COLUMNS: Final = ("t_ns", "lat", "lon", "alt_msl", "agl_m", "roll_deg", "pitch_deg",
                        "yaw_deg", "vel_east", "vel_north", "vel_up")

_GEOD: Final = Geod(ellps="WGS84")


class TruthFileError(ReplayError):
    """The ground-truth file is missing, malformed or does not cover a stamp.

    Attributes:
        path: the file ("" for truth built in memory).
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class TruthSample:
    """The true state at one instant (attitude in degrees, NED Euler; yaw 0 = north)."""

    t_ns: int
    lat: float
    lon: float
    alt_msl: float
    agl_m: float
    roll_deg: float
    pitch_deg: float
    yaw_deg: float
    vel_east: float
    vel_north: float
    vel_up: float


@dataclass(frozen=True, eq=False)
class Truth:
    """A flight's ground truth: one array per column, strictly increasing ``t_ns``."""

    t_ns: NDArray[np.int64]
    columns: dict[str, NDArray[np.float64]]
    path: str = ""

    def __post_init__(self) -> None:
        if self.t_ns.ndim != 1 or self.t_ns.size < 2:
            raise TruthFileError("truth needs at least two samples", path=self.path)
        if np.any(np.diff(self.t_ns) <= 0):
            raise TruthFileError("truth t_ns must increase strictly", path=self.path)
        missing = [c for c in TRUTH_COLUMNS[1:] if c not in self.columns]
        if missing:
            raise TruthFileError(f"truth lacks columns {missing}", path=self.path)
        for name, col in self.columns.items():
            if col.shape != self.t_ns.shape:
                raise TruthFileError(f"truth column {name} has {col.size} values for "
                                     f"{self.t_ns.size} stamps", path=self.path)
            if not np.all(np.isfinite(col)):
                raise TruthFileError(f"truth column {name} has non-finite values",
                                     path=self.path)
        # Interpolating yaw across +-180, and longitude across the antimeridian (a
        # flight over Fiji), needs each unwrapped once: else the truth between two
        # rows either side of 180 deg would lie near 0 deg, half the world away.
        object.__setattr__(self, "_unwrapped", {
            name: np.degrees(np.unwrap(np.radians(self.columns[name])))
            for name in ("yaw_deg", "lon")})

    @classmethod
    def load(cls, path: str | Path) -> Truth:
        """Read ``truth.csv`` (header row :data:`TRUTH_COLUMNS`, then numbers).

        Raises:
            TruthFileError: unreadable, wrong header, a row that is not numbers,
                or stamps that do not increase.
        """
        p = Path(path)
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise TruthFileError(f"{p}: cannot read: {err}", path=str(p)) from err
        rows = list(csv.reader(text.splitlines()))
        if not rows or tuple(c.strip() for c in rows[0]) != TRUTH_COLUMNS:
            got = rows[0] if rows else []
            raise TruthFileError(f"{p}: header must be {','.join(TRUTH_COLUMNS)}, got "
                                 f"{','.join(got)!r}", path=str(p))
        stamps: list[int] = []
        values: list[list[float]] = []
        for lineno, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(TRUTH_COLUMNS):
                raise TruthFileError(f"{p}:{lineno}: {len(row)} fields, expected "
                                     f"{len(TRUTH_COLUMNS)}", path=str(p))
            try:
                stamps.append(int(row[0]))
                values.append([float(v) for v in row[1:]])
            except ValueError as err:
                raise TruthFileError(f"{p}:{lineno}: {err}", path=str(p)) from err
        if len(stamps) < 2:
            raise TruthFileError(f"{p}: needs at least two rows of truth", path=str(p))
        arr = np.asarray(values, dtype=np.float64)
        cols = {name: np.ascontiguousarray(arr[:, i]) for i, name in enumerate(TRUTH_COLUMNS[1:])}
        try:
            t_ns = np.asarray(stamps, dtype=np.int64)
        except OverflowError as err:
            raise TruthFileError(f"{p}: a t_ns does not fit in 64 bits", path=str(p)) from err
        try:
            return cls(t_ns, cols, str(p))
        except TruthFileError as err:
            raise TruthFileError(f"{p}: {err}", path=str(p)) from err

    @property
    def start_ns(self) -> int:
        return int(self.t_ns[0])

    @property
    def end_ns(self) -> int:
        return int(self.t_ns[-1])

    def covers(self, stamp_ns: int) -> bool:
        return self.start_ns <= stamp_ns <= self.end_ns

    def interp(self, name: str, stamps_ns: Sequence[int] | NDArray[np.int64]
               ) -> NDArray[np.float64]:
        """Column ``name`` linearly interpolated at ``stamps_ns`` (all inside the truth).

        Raises:
            TruthFileError: a stamp outside the truth's time span.
        """
        s = np.asarray(stamps_ns, dtype=np.int64)
        if s.size and (s.min() < self.t_ns[0] or s.max() > self.t_ns[-1]):
            bad = int(s.min()) if s.min() < self.t_ns[0] else int(s.max())
            raise TruthFileError(f"stamp {bad} outside the truth ({self.start_ns} .. "
                                 f"{self.end_ns})", path=self.path)
        unwrapped: dict[str, NDArray[np.float64]] = self._unwrapped  # type: ignore[attr-defined]
        col = unwrapped.get(name, self.columns[name])
        # Relative to the first stamp so that float64 keeps nanoseconds exact.
        x = (s - self.t_ns[0]).astype(np.float64)
        xp = (self.t_ns - self.t_ns[0]).astype(np.float64)
        out = np.interp(x, xp, col)
        if name in unwrapped:
            out = (out + 180.0) % 360.0 - 180.0
        return np.asarray(out, dtype=np.float64)

    def at(self, stamp_ns: int) -> TruthSample:
        """The truth at ``stamp_ns``, every column interpolated linearly.

        Raises:
            TruthFileError: the stamp is outside the truth's time span.
        """
        vals = {name: float(self.interp(name, [stamp_ns])[0]) for name in TRUTH_COLUMNS[1:]}
        return TruthSample(t_ns=int(stamp_ns), **vals)


@dataclass(frozen=True)
class Fix:
    """One fix as the estimator published it (``PositionFix``)."""

    stamp_ns: int
    lat: float
    lon: float
    position_covariance: tuple[float, ...]  # ENU 3x3 row-major, m^2
    quality: int = 0
    latency_ms: float | None = None
    velocity_en: tuple[float, float] | None = None  # m/s; None: the fix carried none
    velocity_covariance: tuple[float, ...] | None = None  # ENU 3x3 row-major, (m/s)^2

    def __post_init__(self) -> None:
        if len(self.position_covariance) != 9:
            raise ValueError(f"position_covariance needs 9 values, got "
                             f"{len(self.position_covariance)}")
        if self.velocity_covariance is not None and len(self.velocity_covariance) != 9:
            raise ValueError(f"velocity_covariance needs 9 values, got "
                             f"{len(self.velocity_covariance)}")

    @classmethod
    def from_msg(cls, msg: Any, *, latency_ms: float | None = None) -> Fix:
        """From a ``PositionFix`` (an rclpy message or a rosbags-decoded one alike)."""
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        velocity: tuple[float, float] | None = None
        velocity_cov: tuple[float, ...] | None = None
        if bool(msg.velocity_valid):
            velocity = (float(msg.velocity_enu.x), float(msg.velocity_enu.y))
            velocity_cov = tuple(float(v) for v in msg.velocity_covariance)
        return cls(stamp, float(msg.latitude), float(msg.longitude),
                   tuple(float(v) for v in msg.position_covariance), int(msg.quality),
                   latency_ms, velocity, velocity_cov)

    @property
    def sigma_east(self) -> float:
        return math.sqrt(max(self.position_covariance[0], 0.0))

    @property
    def sigma_north(self) -> float:
        return math.sqrt(max(self.position_covariance[4], 0.0))

    @property
    def sigma_horizontal(self) -> float:
        """sqrt(sigma_e² + sigma_n²): the radius that the band in the plots shows."""
        return math.sqrt(max(self.position_covariance[0], 0.0)
                         + max(self.position_covariance[4], 0.0))


@dataclass(frozen=True)
class Reject:
    """A frame the estimator refused, with the reason it gave."""

    stamp_ns: int
    reason: str


@dataclass(frozen=True)
class FixError:
    """One fix against the truth at its stamp (metres; fix minus truth)."""

    stamp_ns: int
    lat: float
    lon: float
    east_m: float
    north_m: float
    sigma_east_m: float
    sigma_north_m: float
    quality: int

    @property
    def horizontal_m(self) -> float:
        return math.hypot(self.east_m, self.north_m)

    @property
    def sigma_horizontal_m(self) -> float:
        return math.hypot(self.sigma_east_m, self.sigma_north_m)


@dataclass(frozen=True)
class Gap:
    """The longest stretch without a fix."""

    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


@dataclass(frozen=True)
class AccuracyReport:
    """Every figure of one flight. ``None`` where there was nothing to measure."""

    gnss_loss_ns: int | None
    frames_before_loss: int
    fixed_before_loss: int
    frames_after_loss: int
    fixed_after_loss: int
    error_median_m: float | None
    error_p95_m: float | None
    error_max_m: float | None
    within_1sigma_east: float | None
    within_1sigma_north: float | None
    within_3sigma_east: float | None
    within_3sigma_north: float | None
    longest_gap: Gap | None
    latency_count: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    gps_input_count: int
    gps_input_gap_median_s: float | None
    gps_input_gap_p99_s: float | None
    gps_input_gap_max_s: float | None
    reject_reasons: tuple[tuple[str, int], ...]
    errors: tuple[FixError, ...] = field(repr=False)
    rejects: tuple[Reject, ...] = field(repr=False)
    velocity: VelocityFigures = field(default_factory=VelocityFigures.nothing)

    @property
    def frames(self) -> int:
        return self.frames_before_loss + self.frames_after_loss

    @property
    def fixes(self) -> int:
        return self.fixed_before_loss + self.fixed_after_loss

    @property
    def pct_fixed_before_loss(self) -> float | None:
        return _pct(self.fixed_before_loss, self.frames_before_loss)

    @property
    def pct_fixed_after_loss(self) -> float | None:
        return _pct(self.fixed_after_loss, self.frames_after_loss)

    @property
    def pct_fixed(self) -> float | None:
        return _pct(self.fixes, self.frames)

    def to_dict(self, *, series: bool = False) -> dict[str, Any]:
        """JSON-able figures; ``series=True`` adds the per-fix errors and the rejects."""
        d: dict[str, Any] = {
            "gnss_loss_ns": self.gnss_loss_ns,
            "frames": self.frames,
            "fixes": self.fixes,
            "frames_before_loss": self.frames_before_loss,
            "fixed_before_loss": self.fixed_before_loss,
            "frames_after_loss": self.frames_after_loss,
            "fixed_after_loss": self.fixed_after_loss,
            "pct_fixed": self.pct_fixed,
            "pct_fixed_before_loss": self.pct_fixed_before_loss,
            "pct_fixed_after_loss": self.pct_fixed_after_loss,
            "error_m": {"median": self.error_median_m, "p95": self.error_p95_m,
                        "max": self.error_max_m},
            "sigma_coverage": {"east_1sigma": self.within_1sigma_east,
                               "north_1sigma": self.within_1sigma_north,
                               "east_3sigma": self.within_3sigma_east,
                               "north_3sigma": self.within_3sigma_north},
            "longest_gap": None if self.longest_gap is None else {
                "seconds": self.longest_gap.seconds, "start_ns": self.longest_gap.start_ns,
                "end_ns": self.longest_gap.end_ns},
            "latency_ms": {"count": self.latency_count, "p50": self.latency_p50_ms,
                           "p99": self.latency_p99_ms},
            "gps_input": {"count": self.gps_input_count,
                          "gap_s": {"median": self.gps_input_gap_median_s,
                                    "p99": self.gps_input_gap_p99_s,
                                    "max": self.gps_input_gap_max_s}},
            "reject_reasons": dict(self.reject_reasons),
            "velocity": self.velocity.to_dict(),
        }
        if series:
            d["errors"] = [{"stamp_ns": e.stamp_ns, "east_m": e.east_m, "north_m": e.north_m,
                            "horizontal_m": e.horizontal_m, "sigma_east_m": e.sigma_east_m,
                            "sigma_north_m": e.sigma_north_m, "quality": e.quality}
                           for e in self.errors]
            d["rejects"] = [{"stamp_ns": r.stamp_ns, "reason": r.reason} for r in self.rejects]
        return d

    def lines(self) -> list[str]:
        """The figures as a few lines of text for a person."""

        def pct(v: float | None) -> str:
            return fmt(v, " %")

        out = [
            f"frames fixed: {self.fixes}/{self.frames} ({pct(self.pct_fixed)}); before GNSS loss "
            f"{self.fixed_before_loss}/{self.frames_before_loss} "
            f"({pct(self.pct_fixed_before_loss)}), after {self.fixed_after_loss}/"
            f"{self.frames_after_loss} ({pct(self.pct_fixed_after_loss)})",
            f"horizontal error vs truth: median {fmt(self.error_median_m, ' m')}, p95 "
            f"{fmt(self.error_p95_m, ' m')}, max {fmt(self.error_max_m, ' m')}",
            f"sigma coverage: within 1 sigma east {share(self.within_1sigma_east)}, north "
            f"{share(self.within_1sigma_north)}; within 3 sigma east "
            f"{share(self.within_3sigma_east)}, north {share(self.within_3sigma_north)}",
            self.velocity.line(),
            "longest gap without a fix: "
            + ("n/a" if self.longest_gap is None else f"{self.longest_gap.seconds:.1f} s"),
            f"per-frame latency: p50 {fmt(self.latency_p50_ms, ' ms')}, p99 "
            f"{fmt(self.latency_p99_ms, ' ms')} ({self.latency_count} frames)",
            f"GPS_INPUT at the FC: {self.gps_input_count}; gaps median "
            f"{fmt(self.gps_input_gap_median_s, ' s', 2)}, p99 "
            f"{fmt(self.gps_input_gap_p99_s, ' s', 2)}, max "
            f"{fmt(self.gps_input_gap_max_s, ' s', 2)}",
        ]
        if self.reject_reasons:
            out.append("rejects: " + ", ".join(f"{r} {n}" for r, n in self.reject_reasons))
        return out


def fix_errors(truth: Truth, fixes: Sequence[Fix]) -> tuple[FixError, ...]:
    """Each fix minus the truth at its stamp, east and north in metres.

    Raises:
        TruthFileError: a fix outside the truth's time span.
    """
    if not fixes:
        return ()
    stamps = np.array([f.stamp_ns for f in fixes], dtype=np.int64)
    t_lat = truth.interp("lat", stamps)
    t_lon = truth.interp("lon", stamps)
    f_lat = np.array([f.lat for f in fixes], dtype=np.float64)
    f_lon = np.array([f.lon for f in fixes], dtype=np.float64)
    az, _, dist = _GEOD.inv(t_lon, t_lat, f_lon, f_lat)
    az_r = np.radians(np.asarray(az, dtype=np.float64))
    dist_a = np.asarray(dist, dtype=np.float64)
    east = dist_a * np.sin(az_r)
    north = dist_a * np.cos(az_r)
    return tuple(
        FixError(int(f.stamp_ns), f.lat, f.lon, float(e), float(n), f.sigma_east,
                 f.sigma_north, int(f.quality))
        for f, e, n in zip(fixes, east, north, strict=True))


def score_velocities(truth: Truth, fixes: Sequence[Fix]) -> VelocityFigures:
    """The velocities of the fixes that carried one, against the truth's at their stamps.

    Raises:
        TruthFileError: a fix outside the truth's time span.
    """
    moving = [(f, f.velocity_en) for f in fixes if f.velocity_en is not None]
    stamps = np.array([f.stamp_ns for f, _ in moving], dtype=np.int64)
    v = np.array([ven for _, ven in moving], dtype=np.float64).reshape(-1, 2)
    cov = np.array([f.velocity_covariance or (0.0,) * 9 for f, _ in moving],
                   dtype=np.float64).reshape(-1, 9)
    return velocity_figures(
        v[:, 0] - truth.interp("vel_east", stamps),
        v[:, 1] - truth.interp("vel_north", stamps),
        np.sqrt(np.maximum(cov[:, 0], 0.0)),
        np.sqrt(np.maximum(cov[:, 4], 0.0)),
    )


def _longest_gap(fix_ns: NDArray[np.int64], frame_ns: NDArray[np.int64]) -> Gap | None:
    if frame_ns.size == 0:
        return None
    marks = np.unique(np.concatenate([[frame_ns.min()], fix_ns, [frame_ns.max()]]))
    if marks.size < 2:
        return Gap(int(marks[0]), int(marks[0]))
    d = np.diff(marks)
    i = int(np.argmax(d))
    return Gap(int(marks[i]), int(marks[i + 1]))


def evaluate(
    truth: Truth,
    fixes: Iterable[Fix],
    rejects: Iterable[Reject] = (),
    *,
    gnss_loss_ns: int | None,
    gps_input_ns: Iterable[int] = (),
) -> AccuracyReport:
    """Score ``fixes`` against ``truth``.

    Args:
        truth: the flight's ground truth (:meth:`Truth.load`).
        fixes: the estimator's fixes; ``latency_ms`` where it was measured.
        rejects: the frames the estimator refused.
        gnss_loss_ns: when GNSS was lost (``None``: never; every frame is "before").
        gps_input_ns: when each GPS_INPUT reached the flight controller.

    Raises:
        TruthFileError: a fix outside the truth's time span.
    """
    fix_list = sorted(fixes, key=lambda f: f.stamp_ns)
    rej_list = sorted(rejects, key=lambda r: r.stamp_ns)
    errors = fix_errors(truth, fix_list)
    loss = gnss_loss_ns if gnss_loss_ns is not None else np.iinfo(np.int64).max
    fix_ns = np.array([f.stamp_ns for f in fix_list], dtype=np.int64)
    rej_ns = np.array([r.stamp_ns for r in rej_list], dtype=np.int64)
    frame_ns = np.concatenate([fix_ns, rej_ns])

    horiz = np.array([e.horizontal_m for e in errors], dtype=np.float64)
    e_e = np.array([e.east_m for e in errors], dtype=np.float64)
    e_n = np.array([e.north_m for e in errors], dtype=np.float64)
    s_e = np.array([e.sigma_east_m for e in errors], dtype=np.float64)
    s_n = np.array([e.sigma_north_m for e in errors], dtype=np.float64)
    lat_ms = np.array([f.latency_ms for f in fix_list if f.latency_ms is not None],
                      dtype=np.float64)
    gps = np.sort(np.array(list(gps_input_ns), dtype=np.int64))
    gaps = np.diff(gps).astype(np.float64) / 1e9
    reasons = Counter(r.reason for r in rej_list)

    return AccuracyReport(
        gnss_loss_ns=gnss_loss_ns,
        frames_before_loss=int(np.count_nonzero(frame_ns < loss)),
        fixed_before_loss=int(np.count_nonzero(fix_ns < loss)),
        frames_after_loss=int(np.count_nonzero(frame_ns >= loss)),
        fixed_after_loss=int(np.count_nonzero(fix_ns >= loss)),
        error_median_m=quantile(horiz, 50),
        error_p95_m=quantile(horiz, 95),
        error_max_m=None if horiz.size == 0 else float(horiz.max()),
        within_1sigma_east=coverage(e_e, s_e, 1.0),
        within_1sigma_north=coverage(e_n, s_n, 1.0),
        within_3sigma_east=coverage(e_e, s_e, 3.0),
        within_3sigma_north=coverage(e_n, s_n, 3.0),
        longest_gap=_longest_gap(fix_ns, frame_ns),
        latency_count=int(lat_ms.size),
        latency_p50_ms=quantile(lat_ms, 50),
        latency_p99_ms=quantile(lat_ms, 99),
        gps_input_count=int(gps.size),
        gps_input_gap_median_s=quantile(gaps, 50),
        gps_input_gap_p99_s=quantile(gaps, 99),
        gps_input_gap_max_s=None if gaps.size == 0 else float(gaps.max()),
        reject_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        errors=errors,
        rejects=tuple(rej_list),
        velocity=score_velocities(truth, fix_list),
    )
