"""The accuracy report: synthetic flights whose answers are known."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from gps_denied_onboard.replay.accuracy import (
    TRUTH_COLUMNS,
    Fix,
    Reject,
    Truth,
    TruthFileError,
    evaluate,
)

S = 1_000_000_000
T0 = 1_778_580_000 * S
GEOD = Geod(ellps="WGS84")
LAT0, LON0 = 47.02, -99.15


def _write_truth(path: Path, n: int = 201, step_ns: int = 100_000_000,
                 start: tuple[float, float] = (LAT0, LON0)) -> Path:
    """A straight flight north-east at 20 m/s from ``start``, yaw crossing +-180."""
    rows = [",".join(TRUTH_COLUMNS)]
    for i in range(n):
        t = i * step_ns / S
        lon, lat, _ = GEOD.fwd(start[1], start[0], 45.0, 20.0 * t)
        yaw = 170.0 + 2.0 * t  # passes 180 at t = 5 s
        yaw = (yaw + 180.0) % 360.0 - 180.0
        rows.append(f"{T0 + i * step_ns},{lat:.10f},{lon:.10f},{1080.0 + t:.3f},{500.0 + t:.3f},"
                    f"{t:.4f},{-t:.4f},{yaw:.4f},14.1421,14.1421,1.0")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def truth(tmp_path: Path) -> Truth:
    return Truth.load(_write_truth(tmp_path / "truth.csv"))


def _offset_fix(truth: Truth, stamp_ns: int, east: float, north: float, sigma_e: float,
                sigma_n: float, **kw: object) -> Fix:
    s = truth.at(stamp_ns)
    az = math.degrees(math.atan2(east, north))
    lon, lat, _ = GEOD.fwd(s.lon, s.lat, az, math.hypot(east, north))
    cov = (sigma_e**2, 0.0, 0.0, 0.0, sigma_n**2, 0.0, 0.0, 0.0, 25.0)
    return Fix(stamp_ns, lat, lon, cov, **kw)  # type: ignore[arg-type]


def test_truth_interpolates_between_rows(truth: Truth) -> None:
    mid = truth.at(T0 + 50_000_000)  # halfway between the first two rows
    a, b = truth.at(T0), truth.at(T0 + 100_000_000)
    assert mid.lat == pytest.approx((a.lat + b.lat) / 2, abs=1e-12)
    assert mid.agl_m == pytest.approx(500.05)
    assert mid.roll_deg == pytest.approx(0.05)
    # 1 m along the track from the first row.
    _, _, d = GEOD.inv(a.lon, a.lat, mid.lon, mid.lat)
    assert d == pytest.approx(1.0, abs=1e-3)


def test_truth_yaw_interpolates_across_the_wrap(truth: Truth) -> None:
    # yaw = 170 + 2 t: at t = 5.05 s it is 180.1 -> -179.9, not a swing through 0.
    y = truth.at(T0 + 5_050_000_000).yaw_deg
    assert y == pytest.approx(-179.9, abs=1e-6)
    assert truth.at(T0 + 4_950_000_000).yaw_deg == pytest.approx(179.9, abs=1e-6)


def test_a_flight_across_the_antimeridian_is_measured_and_drawn_where_it_flies(
    tmp_path: Path,
) -> None:
    """Over Taveuni (Fiji) the truth's longitude goes from 179.99.. to -179.99..: the
    truth between two such rows is at 180 deg, not near 0 deg half the world away
    (every fix there was some 20,000 km off), and the map draws the flight and its
    fixes a few hundred metres across, not across the world."""
    from gps_denied_onboard.replay.report_plots import _merc, _to_xy

    truth = Truth.load(_write_truth(tmp_path / "truth.csv", start=(-16.85, 179.9990)))
    lons = truth.columns["lon"]
    assert lons[0] > 179.99 and lons[-1] < -179.99  # it does cross
    cross = int(np.argmax(lons < 0))
    between = (int(truth.t_ns[cross - 1]) + int(truth.t_ns[cross])) // 2
    mid = truth.at(between)
    assert abs(mid.lon) > 179.99
    fixes = [_offset_fix(truth, int(truth.t_ns[0]) + k * S // 2 + S // 20, 3.0, 4.0, 4.0, 2.0)
             for k in range(40)]
    rep = evaluate(truth, fixes, gnss_loss_ns=None)
    assert rep.error_max_m == pytest.approx(5.0, abs=1e-2)
    x, _ = _to_xy(_merc(), truth.columns["lat"], lons, (-20037508.342789244, 0.0), 1e-3)
    assert float(np.ptp(x)) < 1.0  # km: the 400 m flight, not 40,000 km of world
    from gps_denied_onboard.replay.report_plots import write_plots

    assert write_plots(rep, truth, None, tmp_path / "plots")["map"].stat().st_size > 0


def test_truth_refuses_stamps_outside_it(truth: Truth) -> None:
    with pytest.raises(TruthFileError, match="outside the truth"):
        truth.at(T0 - 1)
    with pytest.raises(TruthFileError, match="outside the truth"):
        truth.at(truth.end_ns + 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "header"),
        ("t_ns,lat,lon\n1,2,3\n", "header"),
        (",".join(TRUTH_COLUMNS) + "\n1,2,3\n", "3 fields"),
        (",".join(TRUTH_COLUMNS) + "\n" + "1," + ",".join(["x"] * 10) + "\n", "could not convert"),
        (",".join(TRUTH_COLUMNS) + "\n" + "1," + ",".join(["0"] * 10) + "\n", "two rows"),
        (",".join(TRUTH_COLUMNS) + "\n" + "\n".join(f"{t}," + ",".join(["0"] * 10)
                                             for t in (1, 2**64)) + "\n", "64 bits"),
        (",".join(TRUTH_COLUMNS) + "\n" + "\n".join(["5," + ",".join(["0"] * 10)] * 2) + "\n",
         "increase"),
        (",".join(TRUTH_COLUMNS) + "\n" + "1," + ",".join(["0"] * 10) + "\n2,nan"
         + ",0" * 9 + "\n", "non-finite"),
    ],
)
def test_malformed_truth_is_refused_clearly(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(TruthFileError, match=match) as info:
        Truth.load(p)
    assert info.value.path == str(p)


def test_missing_truth_file(tmp_path: Path) -> None:
    with pytest.raises(TruthFileError, match="cannot read"):
        Truth.load(tmp_path / "absent.csv")


def test_known_offsets_give_known_errors_and_coverage(truth: Truth) -> None:
    # 10 fixes, 3 m east and 4 m north of the truth (5 m horizontal), sigma 4 m east, 2 m north:
    # |3| <= 4 (inside 1sigma east), |4| > 2 (outside 1sigma north) but <= 3*2.
    fixes = [_offset_fix(truth, T0 + k * S, 3.0, 4.0, 4.0, 2.0) for k in range(10)]
    rep = evaluate(truth, fixes, gnss_loss_ns=None)
    assert rep.error_median_m == pytest.approx(5.0, abs=1e-3)
    assert rep.error_max_m == pytest.approx(5.0, abs=1e-3)
    for e in rep.errors:
        assert e.east_m == pytest.approx(3.0, abs=1e-3)
        assert e.north_m == pytest.approx(4.0, abs=1e-3)
    assert rep.within_1sigma_east == 1.0
    assert rep.within_1sigma_north == 0.0
    assert rep.within_3sigma_north == 1.0
    # Now half the fixes 30 m west: p95 and max follow, 3sigma east coverage halves.
    far = [_offset_fix(truth, T0 + k * S + S // 2, -30.0, 0.0, 4.0, 2.0) for k in range(10)]
    rep = evaluate(truth, fixes + far, gnss_loss_ns=None)
    assert rep.error_max_m == pytest.approx(30.0, abs=1e-3)
    assert rep.error_median_m == pytest.approx((5.0 + 30.0) / 2, abs=1e-3)
    assert rep.error_p95_m == pytest.approx(30.0, abs=1e-3)
    assert rep.within_3sigma_east == 0.5
    assert [round(e.east_m) for e in rep.errors[:2]] == [3, -30]  # sorted by stamp


def test_fixed_before_and_after_loss_and_longest_gap(truth: Truth) -> None:
    loss = T0 + 5 * S
    stamps = [T0 + k * S // 2 for k in range(40)]  # 2 Hz frames, 0 .. 19.5 s
    # Before the loss (k < 10): every 5th frame rejected -> 8 of 10 fixed.
    # After: frames 20..29 (10 s .. 14.5 s) all rejected -> the longest gap.
    rejected = {k for k in range(10) if k % 5 == 0} | set(range(20, 30))
    fixes = [_offset_fix(truth, s, 1.0, 0.0, 2.0, 2.0) for k, s in enumerate(stamps)
             if k not in rejected]
    rejects = [Reject(stamps[k], "low_margin" if k >= 20 else "attitude_stale")
               for k in sorted(rejected)]
    rep = evaluate(truth, fixes, rejects, gnss_loss_ns=loss)
    assert (rep.frames_before_loss, rep.fixed_before_loss) == (10, 8)
    assert (rep.frames_after_loss, rep.fixed_after_loss) == (30, 20)
    assert rep.pct_fixed_before_loss == pytest.approx(80.0)
    assert rep.pct_fixed_after_loss == pytest.approx(100.0 * 20 / 30)
    assert rep.longest_gap is not None
    # Last fix before the run of rejects is frame 19 (9.5 s), next fix frame 30 (15 s).
    assert rep.longest_gap.start_ns == stamps[19]
    assert rep.longest_gap.end_ns == stamps[30]
    assert rep.longest_gap.seconds == pytest.approx(5.5)
    assert dict(rep.reject_reasons) == {"low_margin": 10, "attitude_stale": 2}


def test_gap_runs_to_the_edges_of_the_flight(truth: Truth) -> None:
    # Rejected first frame and a long tail of rejects: the gap counts from the frames' ends.
    fixes = [_offset_fix(truth, T0 + 2 * S, 0.0, 0.0, 1.0, 1.0)]
    rejects = [Reject(T0, "no_tiles"), Reject(T0 + 12 * S, "no_tiles")]
    rep = evaluate(truth, fixes, rejects, gnss_loss_ns=T0 + 1)
    assert rep.longest_gap is not None
    assert (rep.longest_gap.start_ns, rep.longest_gap.end_ns) == (T0 + 2 * S, T0 + 12 * S)
    assert rep.frames_before_loss == 1  # the frame at T0
    assert rep.fixed_before_loss == 0
    assert rep.pct_fixed_before_loss == 0.0


def test_latency_and_gps_input_gaps(truth: Truth) -> None:
    fixes = [_offset_fix(truth, T0 + k * S // 10, 0.0, 0.0, 1.0, 1.0, latency_ms=float(k + 1))
             for k in range(100)]
    fixes.append(_offset_fix(truth, T0 + 15 * S, 0.0, 0.0, 1.0, 1.0))  # latency unknown
    # GPS_INPUT every 0.2 s with one 3 s hole: 0 .. 2.0 s, then 5.0 .. 6.0 s.
    arrivals = [T0 + k * S // 5 for k in range(11)] + [T0 + 5 * S + k * S // 5 for k in range(6)]
    rep = evaluate(truth, fixes, gnss_loss_ns=None, gps_input_ns=reversed(arrivals))
    assert rep.latency_count == 100
    assert rep.latency_p50_ms == pytest.approx(50.5)
    assert rep.latency_p99_ms == pytest.approx(float(np.percentile(np.arange(1, 101), 99)))
    assert rep.gps_input_count == 17
    assert rep.gps_input_gap_median_s == pytest.approx(0.2)
    assert rep.gps_input_gap_max_s == pytest.approx(3.0)
    assert 0.2 < rep.gps_input_gap_p99_s < 3.0  # type: ignore[operator]


def test_velocities_are_scored_against_the_truth_with_their_own_sigmas(truth: Truth) -> None:
    """The truth flies north-east at 14.14 m/s per axis. Ten fixes 0.3 m/s fast east
    and 0.4 m/s slow north, sigma 0.5 / 0.2 m/s: east inside 1 sigma, north outside 1
    sigma but inside 3; five fixes without a velocity do not count; the JSON and the
    text carry the figures."""
    import json

    cov = (0.25, 0.0, 0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 1.0)
    moving = [
        _offset_fix(truth, T0 + k * S, 1.0, 1.0, 3.0, 3.0,
                    velocity_en=(14.1421 + 0.3, 14.1421 - 0.4), velocity_covariance=cov)
        for k in range(10)
    ]
    still = [_offset_fix(truth, T0 + k * S + S // 2, 1.0, 1.0, 3.0, 3.0) for k in range(5)]
    rep = evaluate(truth, moving + still, gnss_loss_ns=None)
    v = rep.velocity
    assert v.count == 10
    assert v.error_median_mps == pytest.approx(0.5, abs=1e-6)
    assert v.error_p95_mps == pytest.approx(0.5, abs=1e-6)
    assert (v.within_1sigma_east, v.within_1sigma_north) == (1.0, 0.0)
    assert (v.within_3sigma_east, v.within_3sigma_north) == (1.0, 1.0)
    # one fix 2 m/s off east: past 3 sigma there, and the p95 follows it
    off = _offset_fix(truth, T0 + 12 * S, 1.0, 1.0, 3.0, 3.0,
                      velocity_en=(14.1421 + 2.0, 14.1421), velocity_covariance=cov)
    rep = evaluate(truth, [*moving, off], gnss_loss_ns=None)
    assert rep.velocity.within_3sigma_east == pytest.approx(10 / 11)
    assert rep.velocity.error_p95_mps > 1.0
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["velocity"]["count"] == 11
    assert d["velocity"]["sigma_coverage"]["north_1sigma"] == pytest.approx(1 / 11)
    assert any(line.startswith("velocity vs truth (11 fixes): median 0.50 m/s")
               for line in rep.lines())
    with pytest.raises(ValueError, match="velocity_covariance needs 9"):
        Fix(T0, LAT0, LON0, cov, velocity_en=(0.0, 0.0), velocity_covariance=(1.0,))


def test_nothing_to_measure_is_none_not_zero(truth: Truth) -> None:
    rep = evaluate(truth, [], [Reject(T0, "black_frame")], gnss_loss_ns=T0)
    assert rep.fixes == 0
    assert rep.frames_after_loss == 1
    assert rep.pct_fixed_after_loss == 0.0
    assert rep.pct_fixed_before_loss is None
    assert rep.error_median_m is None
    assert rep.within_1sigma_east is None
    assert rep.latency_p50_ms is None
    assert rep.gps_input_gap_max_s is None
    assert rep.velocity.count == 0 and rep.velocity.error_median_mps is None
    assert any("n/a" in line for line in rep.lines())
    assert any("no fix carried a velocity" in line for line in rep.lines())


def test_fix_outside_the_truth_is_refused(truth: Truth) -> None:
    with pytest.raises(TruthFileError):
        evaluate(truth, [Fix(truth.end_ns + S, LAT0, LON0, (1.0,) + (0.0,) * 8)],
                 gnss_loss_ns=None)


def test_report_renders_as_text_and_json(truth: Truth) -> None:
    import json

    fixes = [_offset_fix(truth, T0 + k * S, 6.0, 8.0, 5.0, 5.0, quality=77, latency_ms=80.0)
             for k in range(5)]
    rep = evaluate(truth, fixes, [Reject(T0 + 500_000_000, "low_margin")],
                   gnss_loss_ns=T0 + 2 * S, gps_input_ns=[T0, T0 + S])
    d = json.loads(json.dumps(rep.to_dict(series=True)))
    assert d["fixes"] == 5 and d["frames"] == 6
    assert d["error_m"]["median"] == pytest.approx(10.0, abs=1e-3)
    assert d["gps_input"]["count"] == 2
    assert d["errors"][0]["quality"] == 77
    assert d["rejects"] == [{"stamp_ns": T0 + 500_000_000, "reason": "low_margin"}]
    assert "errors" not in rep.to_dict()
    text = "\n".join(rep.lines())
    assert "median 10.0 m" in text
    assert "2/3 (66.7 %)" in text  # before the loss: 2 fixes of 3 frames
    assert "low_margin 1" in text


def test_plots_are_written(truth: Truth, tmp_path: Path) -> None:
    import cv2

    from gps_denied_onboard.replay.report_plots import write_plots

    # One real tile under the flight, so the map draws a background.
    tiles = tmp_path / "tiles"
    n = 1 << 15
    x = int((LON0 + 180.0) / 360.0 * n)
    y = int((1 - math.asinh(math.tan(math.radians(LAT0))) / math.pi) / 2 * n)
    (tiles / "15" / str(x)).mkdir(parents=True)
    cv2.imwrite(str(tiles / "15" / str(x) / f"{y}.jpg"), np.full((256, 256, 3), 90, np.uint8))
    fixes = [_offset_fix(truth, T0 + k * S // 2, 2.0, -1.0, 3.0, 3.0) for k in range(30)]
    rep = evaluate(truth, fixes, [Reject(T0 + 16 * S, "low_margin")], gnss_loss_ns=T0 + 5 * S)
    out = write_plots(rep, truth, tiles, tmp_path / "plots")
    for name in ("map", "error"):
        img = cv2.imread(str(out[name]))
        assert img is not None, name
        assert img.shape[0] > 400 and img.shape[1] > 600
        assert img.std() > 10  # something was drawn


def test_fix_from_a_position_fix_message() -> None:
    from dataclasses import replace

    from gps_denied_onboard.replay.types import project_typestore

    store = project_typestore()
    t = store.types
    msg = t["gps_denied_onboard/msg/PositionFix"](
        header=t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=1_778_580_012, nanosec=500_000_000),
            frame_id="map"),
        latitude=47.01, longitude=-99.16, altitude_msl=1080.0,
        velocity_enu=t["geometry_msgs/msg/Vector3"](x=1.0, y=2.0, z=0.0), velocity_valid=True,
        position_covariance=np.array([9.0, 0, 0, 0, 16.0, 0, 0, 0, 25.0]),
        velocity_covariance=np.zeros(9), yaw_enu=0.0, yaw_valid=False, yaw_variance=0.0,
        reset_counter=0, quality=66)
    decoded = store.deserialize_cdr(
        store.serialize_cdr(msg, "gps_denied_onboard/msg/PositionFix"),
        "gps_denied_onboard/msg/PositionFix")
    fix = Fix.from_msg(decoded, latency_ms=42.0)
    assert fix.stamp_ns == 1_778_580_012_500_000_000
    assert (fix.lat, fix.lon, fix.quality, fix.latency_ms) == (47.01, -99.16, 66, 42.0)
    assert (fix.sigma_east, fix.sigma_north) == (3.0, 4.0)
    assert fix.sigma_horizontal == 5.0
    assert fix.velocity_en == (1.0, 2.0)
    assert fix.velocity_covariance == (0.0,) * 9
    invalid = store.deserialize_cdr(
        store.serialize_cdr(replace(msg, velocity_valid=False),
                            "gps_denied_onboard/msg/PositionFix"),
        "gps_denied_onboard/msg/PositionFix")
    assert Fix.from_msg(invalid).velocity_en is None  # not valid: not scored


_CELL = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=",\n\"x0123456789.-e ", max_size=12),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=0, max_size=13), max_size=6), st.booleans())
def test_hostile_truth_files_load_or_raise_truth_file_error(
        tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], header: bool) -> None:
    lines = ([",".join(TRUTH_COLUMNS)] if header else []) + [",".join(r) for r in rows]
    p = tmp_path_factory.mktemp("hostile") / "truth.csv"
    p.write_text("\n".join(lines) + "\n")
    try:
        truth = Truth.load(p)
    except TruthFileError as err:
        assert err.path == str(p)
        return
    # It loaded: then it is a usable truth.
    assert truth.t_ns.size >= 2 and np.all(np.diff(truth.t_ns) > 0)
    truth.at(truth.start_ns)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 19_999), st.booleans()), max_size=60,
             unique_by=lambda v: v[0]),
    st.integers(0, 20_000),
)
def test_counts_and_gap_agree_with_the_frames(frames: list[tuple[int, bool]], loss_ms: int) -> None:
    truth = Truth(np.array([T0, T0 + 20 * S], dtype=np.int64),
                  {c: np.array([LAT0, LAT0 + 0.001]) if c == "lat" else
                   np.array([LON0, LON0]) if c == "lon" else np.zeros(2)
                   for c in TRUTH_COLUMNS[1:]})
    cov = (4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 9.0)
    fixes = [Fix(T0 + ms * 1_000_000, LAT0, LON0, cov) for ms, fixed in frames if fixed]
    rejects = [Reject(T0 + ms * 1_000_000, "gate") for ms, fixed in frames if not fixed]
    loss = T0 + loss_ms * 1_000_000
    rep = evaluate(truth, fixes, rejects, gnss_loss_ns=loss)
    assert rep.frames == len(frames) and rep.fixes == len(fixes)
    assert rep.frames_before_loss == sum(T0 + ms * 1_000_000 < loss for ms, _ in frames)
    assert 0 <= rep.fixed_before_loss <= rep.frames_before_loss
    if not frames:
        assert rep.longest_gap is None
        return
    assert rep.longest_gap is not None
    stamps = sorted(T0 + ms * 1_000_000 for ms, _ in frames)
    marks = sorted({stamps[0], stamps[-1], *(f.stamp_ns for f in fixes)})
    gaps = [b - a for a, b in itertools.pairwise(marks)] or [0]
    assert rep.longest_gap.end_ns - rep.longest_gap.start_ns == max(gaps)
    assert stamps[0] <= rep.longest_gap.start_ns <= rep.longest_gap.end_ns <= stamps[-1]
