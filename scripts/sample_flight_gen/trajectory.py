"""The true flight: the plan flown at constant speed, the altitude profile, the attitude."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import CRS, Transformer

from sample_flight_gen.common import aeqd, libm
from sample_flight_gen.spec import (
    ALTITUDE_PROFILE,
    BANK_DEG,
    CAMERA,
    CRUISE_PITCH_DEG,
    DT_S,
    DURATION_S,
    GROUND_MSL_M,
    IMAGE_H,
    IMAGE_W,
    PLAN,
    ROLL_RAMP_S,
    SEED,
    SPEED_MPS,
    START_EN,
    START_YAW_DEG,
    G,
)


@dataclass(frozen=True)
class Track:
    """The true flight on the DT_S grid (arrays of equal length)."""

    t: np.ndarray  # s since START_NS
    east: np.ndarray  # m, clip-centre aeqd frame
    north: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    agl: np.ndarray
    ve: np.ndarray
    vn: np.ndarray
    vu: np.ndarray
    roll: np.ndarray  # rad, NED/FRD Euler
    pitch: np.ndarray
    yaw: np.ndarray  # rad, NED: 0 = north, clockwise, wrapped to (-pi, pi]
    legs: list[dict[str, Any]]

    @property
    def alt_msl(self) -> np.ndarray:
        return GROUND_MSL_M + self.agl


def _smooth(x: np.ndarray) -> np.ndarray:
    """0 -> 1 raised cosine on [0, 1], clamped."""
    return 0.5 - 0.5 * libm(math.cos, np.pi * np.clip(x, 0.0, 1.0))


def _agl(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height above ground and its rate."""
    h = np.full_like(t, ALTITUDE_PROFILE[0][2])
    rate = np.zeros_like(t)
    for t0, t1, h0, h1 in ALTITUDE_PROFILE:
        x = (t - t0) / (t1 - t0)
        inside = (x > 0.0) & (x < 1.0)
        h = np.where(x >= 1.0, h1, np.where(inside, h0 + (h1 - h0) * _smooth(x), h))
        rate = np.where(
            inside, (h1 - h0) * 0.5 * np.pi / (t1 - t0) * libm(math.sin, np.pi * x), rate
        )
    return h, rate


def _bank_schedule() -> tuple[list[tuple[float, float, float, float]], list[dict[str, Any]]]:
    """Turns as (t_start, ramp, plateau, signed bank rad) and the legs' times."""
    bank = math.radians(BANK_DEG)
    rate = G * math.tan(bank) / SPEED_MPS  # heading rate at full bank, rad/s
    # Heading change of one linear roll ramp of ROLL_RAMP_S (numerically, fine grid).
    s = np.linspace(0.0, 1.0, 2001)
    ramp_turn = float(np.trapezoid(G * libm(math.tan, bank * s) / SPEED_MPS, s * ROLL_RAMP_S))
    turns = []
    legs = []
    t = 0.0
    for name, kind, value in PLAN:
        if kind == "straight":
            dur = value / SPEED_MPS
        else:
            plateau = (math.radians(abs(value)) - 2 * ramp_turn) / rate
            if plateau < 0:
                raise ValueError(f"{name}: {value} degrees is too small a turn for the ramps")
            turns.append((t, ROLL_RAMP_S, plateau, math.copysign(bank, value)))
            dur = 2 * ROLL_RAMP_S + plateau
        legs.append({"name": name, "t0_s": round(t, 3), "t1_s": round(min(t + dur, DURATION_S), 3)})
        t += dur
    return turns, legs


def _bank(t: np.ndarray, turns: list[tuple[float, float, float, float]]) -> np.ndarray:
    phi = np.zeros_like(t)
    for t0, ramp, plateau, bank in turns:
        up = np.clip((t - t0) / ramp, 0.0, 1.0)
        down = np.clip((t - (t0 + ramp + plateau)) / ramp, 0.0, 1.0)
        phi += bank * (up - down)
    return phi


def band_noise(rng: np.random.Generator, n: int, tau_s: float, rms: float) -> np.ndarray:
    """First-order low-pass of white noise (time constant ``tau_s``), scaled to ``rms``."""
    a = math.exp(-DT_S / tau_s)
    white = rng.normal(0.0, 1.0, n + 2000)
    out = np.empty_like(white)
    acc = 0.0
    for i, w in enumerate(white):  # deterministic recursion; n is a few 10k
        acc = a * acc + w
        out[i] = acc
    out = out[2000:]
    return np.asarray(out / np.std(out) * rms)


def _vibration(rng: np.random.Generator, t: np.ndarray, rms_deg: float) -> np.ndarray:
    """Turbulence (0.5 s) plus three 2-7 Hz sinusoids, about ``rms_deg`` RMS together."""
    freqs = rng.uniform(2.0, 7.0, 3)
    phases = rng.uniform(0.0, 2 * math.pi, 3)
    amps = rng.uniform(0.6, 1.0, 3)
    sines = sum(
        a * libm(math.sin, 2 * math.pi * f * t + p)
        for a, f, p in zip(amps, freqs, phases, strict=True)
    )
    sines = sines / np.sqrt(np.mean(np.square(sines)))
    turb = band_noise(rng, t.size, 0.5, 1.0)
    return np.asarray(np.radians(rms_deg * (0.6 * sines + 0.8 * turb)))


def trajectory(center: tuple[float, float]) -> Track:
    turns, legs = _bank_schedule()
    n = round(DURATION_S / DT_S) + 1
    t = np.arange(n) * DT_S
    bank = _bank(t, turns)
    yaw_rate = G * libm(math.tan, bank) / SPEED_MPS
    # Heading and position: trapezoidal integration on the grid.
    course = math.radians(START_YAW_DEG) + np.concatenate(
        [[0.0], np.cumsum(0.5 * (yaw_rate[1:] + yaw_rate[:-1]) * DT_S)]
    )
    ve = SPEED_MPS * libm(math.sin, course)
    vn = SPEED_MPS * libm(math.cos, course)
    east = START_EN[0] + np.concatenate([[0.0], np.cumsum(0.5 * (ve[1:] + ve[:-1]) * DT_S)])
    north = START_EN[1] + np.concatenate([[0.0], np.cumsum(0.5 * (vn[1:] + vn[:-1]) * DT_S)])
    agl, vu = _agl(t)
    rng = np.random.default_rng(SEED)
    gamma = libm(math.atan2, vu, np.full_like(vu, SPEED_MPS))
    load = 1.0 / libm(math.cos, bank) - 1.0
    pitch = (
        np.radians(CRUISE_PITCH_DEG)
        + gamma
        + np.radians(1.5) * load / (1.0 / math.cos(math.radians(BANK_DEG)) - 1.0)
    )
    roll = bank + _vibration(rng, t, 0.4)
    pitch = pitch + _vibration(rng, t, 0.35)
    yaw = course + _vibration(rng, t, 0.25)
    yaw = libm(lambda a: math.atan2(math.sin(a), math.cos(a)), yaw)
    to_ll = Transformer.from_crs(aeqd(*center), CRS.from_epsg(4326), always_xy=True)
    lon, lat = to_ll.transform(east, north)
    for leg in legs:
        i0, i1 = round(leg["t0_s"] / DT_S), min(round(leg["t1_s"] / DT_S), n - 1)
        lo, hi = float(agl[i0 : i1 + 1].min()), float(agl[i0 : i1 + 1].max())
        leg["agl_m"] = [round(lo, 1), round(hi, 1)]
        tan_h = (IMAGE_W / 2) / CAMERA.matrix[0, 0]
        tan_v = (IMAGE_H / 2) / CAMERA.matrix[1, 1]
        leg["footprint_m"] = {
            "across": [round(2 * lo * tan_h), round(2 * hi * tan_h)],
            "along": [round(2 * lo * tan_v), round(2 * hi * tan_v)],
        }
    return Track(
        t, east, north, np.asarray(lat), np.asarray(lon), agl, ve, vn, vu, roll, pitch, yaw, legs
    )
