"""What was learnt about the camera survives a restart (visual_nav/learnt_camera.py).

The file round-trips exactly, is written whole or not at all, and a bad one is
refused with a typed error; an estimator restores it only for the camera and
mount it was learnt on. The cross-year NAIP case pins what it is for: a camera
mounted off, learnt against the GNSS, the estimator restarted after the GNSS's
loss.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.boresight import Boresight, BoresightConfig
from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import FrameRejected, LearntCameraError
from gps_denied_onboard.visual_nav.flat_field import FlatField, FlatFieldConfig, LensRings
from gps_denied_onboard.visual_nav.learnt_camera import (
    LearntCamera,
    from_json,
    learnt_by,
    learnt_of,
    read_learnt_camera,
    remove_stale_temps,
    restore_into,
    restore_to,
    to_json,
    write_learnt_camera,
)
from gps_denied_onboard.visual_nav.state import Prior

from .support import (
    CAMERA,
    T0,
    circle_flight,
    error_m,
    feed,
    make_estimator,
    naip,
    naip_tiles,
    render,
)

NS = 1_000_000_000
MOUNT = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # the nominal nadir mount
RINGS = 12


def _state(**change: object) -> LearntCamera:
    base: dict[str, object] = {
        "stamp_ns": T0,
        "camera": CAMERA,
        "mount_rotation": MOUNT,
        "mount_correction_deg": (1.4321, -0.9876),
        "lens": LensRings(  # a lens whose corners fall off to half, 100 px a ring
            tuple(100.0 * math.log(1.0 - 0.5 * (k + 0.5) / RINGS) for k in range(RINGS)),
            (100.0,) * RINGS,
            17,
        ),
    }
    base.update(change)
    return LearntCamera(**base)  # type: ignore[arg-type]


def test_a_learnt_camera_round_trips_through_its_file_exactly(tmp_path: Path) -> None:
    path = tmp_path / "visual_nav" / "learnt_camera.json"  # the directory is made
    for state in (_state(), _state(lens=None, mount_correction_deg=(0.0, 0.0))):
        write_learnt_camera(path, state)
        assert read_learnt_camera(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["learnt_camera.json"]  # no temp left


def test_a_failed_write_leaves_the_file_before_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "learnt_camera.json"
    write_learnt_camera(path, _state())
    before = path.read_bytes()

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError):
        write_learnt_camera(path, _state(mount_correction_deg=(2.0, 2.0)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["learnt_camera.json"]
    # and a state that cannot be written at all (a NaN) is refused before the file is touched
    monkeypatch.undo()
    with pytest.raises(ValueError):
        write_learnt_camera(path, _state(mount_correction_deg=(math.nan, 0.0)))
    assert path.read_bytes() == before


def test_temporaries_a_killed_write_left_are_removed_and_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "learnt_camera.json"
    write_learnt_camera(path, _state())
    for pid in (101, 202):  # kill -9 between the temporary and the rename, twice
        (tmp_path / f".learnt_camera.json.{pid}.tmp").write_text('{"version": 1, "cam')
    (tmp_path / "other.json").write_text("{}")
    assert remove_stale_temps(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learnt_camera.json", "other.json"]
    assert read_learnt_camera(path) == _state()


def _doc() -> dict[str, object]:
    doc = json.loads(to_json(_state()))
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    ("why", "text"),
    [
        ("not JSON", "{not json"),
        ("not an object", "[1, 2]"),
        ("another version", json.dumps({**_doc(), "version": 2})),
        ("a field missing", json.dumps({k: v for k, v in _doc().items() if k != "camera"})),
        ("k of 8", json.dumps({**_doc(), "camera": {**_doc()["camera"], "k": [1.0] * 8}})),  # type: ignore[dict-item]
        ("a NaN", json.dumps({**_doc(), "mount_correction_deg": [1.0, math.nan]})),
        ("a string", json.dumps({**_doc(), "mount_correction_deg": [1.0, "x"]})),
        ("a bool", json.dumps({**_doc(), "mount_correction_deg": [1.0, True]})),
        ("no camera", json.dumps({**_doc(), "camera": {**_doc()["camera"], "width": 0}})),  # type: ignore[dict-item]
        (
            "negative weight",
            json.dumps({**_doc(), "lens": {**_doc()["lens"], "weights": [-1.0] * 12}}),
        ),  # type: ignore[dict-item]
        ("stamp a float", json.dumps({**_doc(), "stamp_ns": 1.5})),
    ],
)
def test_a_bad_file_is_refused_with_a_typed_error(why: str, text: str) -> None:
    with pytest.raises(LearntCameraError):
        from_json(text)


def test_a_file_too_large_or_not_utf8_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "learnt_camera.json"
    path.write_bytes(b" " * (64 * 1024 + 1))
    with pytest.raises(LearntCameraError, match="over"):
        read_learnt_camera(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(LearntCameraError, match="UTF-8"):
        read_learnt_camera(path)
    with pytest.raises(FileNotFoundError):  # a first flight: none yet
        read_learnt_camera(tmp_path / "none.json")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_a_file_cut_anywhere_is_refused(data: st.DataObject) -> None:
    """What a torn write would leave (the atomic rename prevents it; a copied file may not)."""
    text = to_json(_state())
    cut = data.draw(st.integers(0, len(text) - 2))
    with pytest.raises(LearntCameraError):
        from_json(text[:cut])


def _learnt_parts() -> tuple[Boresight, FlatField]:
    b = Boresight(BoresightConfig())
    b.restore((1.2, -0.8))
    ff = FlatField(FlatFieldConfig())
    assert ff.restore(CAMERA, _state().lens)  # type: ignore[arg-type]
    return b, ff


def test_it_is_restored_only_for_the_camera_and_mount_it_was_learnt_on() -> None:
    b, ff = _learnt_parts()
    state = learnt_of(T0, CAMERA, MOUNT, b, ff)
    assert state.mount_correction_deg == pytest.approx((1.2, -0.8))
    assert state.lens == _state().lens

    other_cam = CameraModel(
        CAMERA.width, CAMERA.height, (*CAMERA.k[:2], CAMERA.k[2] + 1, *CAMERA.k[3:])
    )
    turned = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)
    for camera, mount in ((other_cam, MOUNT), (CAMERA, turned)):
        fresh_b, fresh_ff = Boresight(BoresightConfig()), FlatField(FlatFieldConfig())
        assert not restore_into(state, camera, mount, fresh_b, fresh_ff)
        assert fresh_b.correction_deg == (0.0, 0.0) and fresh_ff.rings(camera) is None

    fresh_b, fresh_ff = Boresight(BoresightConfig()), FlatField(FlatFieldConfig())
    assert restore_into(state, CAMERA, MOUNT, fresh_b, fresh_ff)
    assert fresh_b.correction_deg == pytest.approx((1.2, -0.8))
    assert np.allclose(fresh_b.rotation(), b.rotation())
    assert fresh_ff.rings(CAMERA) == state.lens
    gray = np.full((CAMERA.height, CAMERA.width), 100.0, np.float32)
    assert np.array_equal(fresh_ff.corrected(gray, CAMERA), ff.corrected(gray, CAMERA))
    assert fresh_ff.corner_falloff() > 0.15  # the rings' falloff: it divides at once


def test_an_implausible_restored_correction_is_not_taken() -> None:
    b = Boresight(BoresightConfig(max_tilt_deg=3.0))
    b.restore((4.0, 0.0))
    assert b.correction_deg == (0.0, 0.0)


def test_a_restart_after_the_gnss_is_lost_keeps_the_learnt_mounting(tmp_path: Path) -> None:
    """1 km footprints (500 m above ground) on a 3 deg/s turn, 2017 map, 2009 frames;
    the camera mounted 1.5 / -1 deg off what the estimator is told. A GNSS 1.5 m
    noisy until 50 s, then lost; the estimator restarted at 52 s, resumed from its
    last fix, with or without the file its predecessor wrote."""
    ortho, tiles = naip("2009"), naip_tiles("2017")
    rng = np.random.default_rng(5)
    flight = circle_flight()
    gnss = [p.offset(*rng.normal(0.0, 1.5, 2)) for p in flight]
    frames = [render(ortho, p, mount_rpy=(1.5, -1.0, 0.0)) for p in flight]
    path = tmp_path / "learnt_camera.json"

    def fly(est: object, ks: range) -> list[tuple[int, object]]:
        out = []
        for k in ks:
            stamp = T0 + k * NS
            healthy = k < 50
            feed(est, stamp, flight[k], prior=gnss[k] if healthy else None, prior_sigma_m=2.0)  # type: ignore[arg-type]
            if not healthy:
                est.set_gnss_healthy(False, stamp)  # type: ignore[attr-defined]
            try:
                out.append((k, est.process(stamp, frames[k], CAMERA)))  # type: ignore[attr-defined]
            except FrameRejected as rej:
                out.append((k, rej))
        return out

    first = make_estimator(tiles, attitude_sigma_deg=0.15)
    got = fly(first, range(52))
    learnt = learnt_by(first)
    assert learnt is not None and math.hypot(*learnt.mount_correction_deg) > 1.2
    write_learnt_camera(path, learnt)
    last = next(f for _, f in reversed(got) if not isinstance(f, FrameRejected))

    def restarted(restore: bool) -> list[tuple[float, float]]:
        est = make_estimator(tiles, attitude_sigma_deg=0.15)
        if restore:
            assert restore_to(est, read_learnt_camera(path), CAMERA)
        prior = Prior(
            last.stamp_ns,
            last.latitude,
            last.longitude,
            last.sigma_m,  # type: ignore[attr-defined]
            last.velocity_en or (0.0, 0.0),
            last.velocity_sigma,
            "resumed",  # type: ignore[attr-defined]
        )
        assert est.resume_track(prior, last.reset_counter)  # type: ignore[attr-defined]
        est.set_gnss_healthy(False, T0 + 52 * NS)
        out = []
        for k, fix in fly(est, range(52, 70)):
            if not isinstance(fix, FrameRejected):
                e, n = error_m(flight[k], fix.latitude, fix.longitude)  # type: ignore[attr-defined]
                out.append((math.hypot(e, n), max(abs(e), abs(n)) / fix.sigma_m))  # type: ignore[attr-defined]
        return out

    without, kept = restarted(False), restarted(True)
    assert len(kept) >= 12 and len(without) >= 6
    assert float(np.median([e for e, _ in without])) > 10.0, without  # the mounting's 15 m
    assert float(np.median([e for e, _ in kept])) < 5.0, kept
    assert all(z <= 3.0 for _, z in kept), kept
