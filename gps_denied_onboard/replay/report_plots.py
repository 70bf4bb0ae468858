"""Pictures of an :class:`~gps_denied_onboard.replay.accuracy.AccuracyReport` (matplotlib, Agg).

Two PNGs:

- ``map.png``: the reference tiles (web-mercator JPEGs placed by their
  extents) as background, the true track, the fixes coloured by their
  horizontal sigma, rejected frames, the GNSS-loss point;
- ``error.png``: horizontal error against time with the +-sigma band
  (sigma = sqrt(sigma_e² + sigma_n²)) and the loss marked.

Positions go to web-mercator metres by pyproj and are shown as ground
kilometres from the map's lower-left corner (mercator is conformal: times
cos(latitude) near the flight).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from gps_denied_onboard.replay.accuracy import AccuracyReport, Truth

MERC_HALF_M: Final = 20037508.342789244


@dataclass(frozen=True)
class MapTile:
    """One reference tile on disk: web-mercator ``z/x/y`` and its JPEG."""

    z: int
    x: int
    y: int
    path: Path


def tiles_under(root: str | Path, zoom: int | None = None) -> list[MapTile]:
    """The ``<z>/<x>/<y>.jpg`` tiles under ``root`` (one zoom: the given or the coarsest)."""
    base = Path(root)
    found: list[MapTile] = []
    for p in sorted(base.glob("*/*/*.jpg")):
        try:
            z, x, y = int(p.parent.parent.name), int(p.parent.name), int(p.stem)
        except ValueError:
            continue
        found.append(MapTile(z, x, y, p))
    if not found:
        return []
    want = zoom if zoom is not None else min(t.z for t in found)
    return [t for t in found if t.z == want]


def _merc() -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(3857), always_xy=True)


def _tile_extent(t: MapTile) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of a tile in mercator metres."""
    size = 2 * MERC_HALF_M / (1 << t.z)
    left = t.x * size - MERC_HALF_M
    top = MERC_HALF_M - t.y * size
    return left, left + size, top - size, top


def _east_of(x: Any, origin_x: float) -> NDArray[np.float64]:
    """Mercator metres east of ``origin_x`` the short way round the world: a flight
    (and its tiles) across the antimeridian is drawn where it flies, not stretched
    across the whole map from one side to the other."""
    dx = np.asarray(x, dtype=np.float64) - origin_x
    return np.asarray((dx + MERC_HALF_M) % (2 * MERC_HALF_M) - MERC_HALF_M, dtype=np.float64)


def _to_xy(tr: Transformer, lat: Any, lon: Any, origin: tuple[float, float], k: float
           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Plot coordinates: mercator metres from ``origin`` times ``k`` (to ground km)."""
    x, y = tr.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return _east_of(x, origin[0]) * k, (np.asarray(y) - origin[1]) * k


def plot_map(report: AccuracyReport, truth: Truth, tiles: Iterable[MapTile], out: Path,
             *, title: str = "") -> Path:
    """Write the map picture to ``out`` (PNG) and return its path."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    tr = _merc()
    tile_list = list(tiles)
    lat_all = truth.columns["lat"]
    lon_all = truth.columns["lon"]
    if tile_list:
        exts = [_tile_extent(t) for t in tile_list]
        origin = (min(e[0] for e in exts), min(e[2] for e in exts))
    else:
        x0, y0 = tr.transform(float(lon_all.min()), float(lat_all.min()))
        origin = (float(x0), float(y0))
    # Mercator is conformal: near the flight, ground km = mercator km * cos(latitude).
    k = float(np.cos(np.radians(np.mean(lat_all)))) / 1000.0
    fig, ax = plt.subplots(figsize=(10, 8), dpi=110)
    for t in tile_list:
        img = cv2.imread(str(t.path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        left, right, bottom, top = _tile_extent(t)
        west = float(_east_of(left, origin[0]))
        ax.imshow(img[:, :, ::-1], extent=(west * k, (west + right - left) * k,
                                           (bottom - origin[1]) * k, (top - origin[1]) * k),
                  interpolation="bilinear", zorder=0)
    tx, ty = _to_xy(tr, lat_all, lon_all, origin, k)
    ax.plot(tx, ty, color="white", lw=3.2, zorder=2, alpha=0.9)
    ax.plot(tx, ty, color="black", lw=1.4, zorder=3, label="true track")
    ax.plot(tx[:1], ty[:1], marker="o", color="white", mec="black", ms=7, zorder=6)
    handles: list[Any] = [Line2D([], [], color="black", lw=1.4, label="true track")]
    errs = report.errors
    if errs:
        fx, fy = _to_xy(tr, [e.lat for e in errs], [e.lon for e in errs], origin, k)
        sig = np.array([e.sigma_horizontal_m for e in errs])
        vmax = float(max(np.percentile(sig, 98), 1.0))
        sc = ax.scatter(fx, fy, c=sig, cmap="plasma", vmin=0.0, vmax=vmax, s=16,
                        edgecolors="black", linewidths=0.3, zorder=4)
        cb = fig.colorbar(sc, ax=ax, fraction=0.035, pad=0.02)
        cb.set_label("fix \u03c3, horizontal (m): \u221a(\u03c3 east\u00b2 + \u03c3 north\u00b2)")
        handles.append(Line2D([], [], ls="", marker="o", color="tab:orange", mec="black",
                              label=f"fixes ({len(errs)})"))
        # Fixes outside their own 3 sigma: a line from the true position to the fix.
        bad = [i for i, e in enumerate(errs) if e.horizontal_m > 3.0 * e.sigma_horizontal_m]
        if bad:
            stamps = [errs[i].stamp_ns for i in bad]
            bx, by = _to_xy(tr, truth.interp("lat", stamps), truth.interp("lon", stamps),
                            origin, k)
            for i, x0, y0 in zip(bad, bx, by, strict=True):
                ax.plot([x0, fx[i]], [y0, fy[i]], color="red", lw=1.0, zorder=5)
            handles.append(Line2D([], [], color="red", lw=1.0,
                                  label=f"fix outside its 3\u03c3 ({len(bad)}): truth \u2192 fix"))
    rej = [r for r in report.rejects if truth.covers(r.stamp_ns)]
    if rej:
        stamps = [r.stamp_ns for r in rej]
        rx, ry = _to_xy(tr, truth.interp("lat", stamps), truth.interp("lon", stamps), origin, k)
        ax.scatter(rx, ry, marker="x", color="red", s=28, linewidths=1.4, zorder=5)
        label = f"rejected frames ({len(report.rejects)}), at the true position"
        handles.append(Line2D([], [], ls="", marker="x", color="red", label=label))
    if report.gnss_loss_ns is not None and truth.covers(report.gnss_loss_ns):
        lx, ly = _to_xy(tr, truth.interp("lat", [report.gnss_loss_ns]),
                        truth.interp("lon", [report.gnss_loss_ns]), origin, k)
        ax.scatter(lx, ly, marker="*", s=320, color="yellow", edgecolors="black",
                   linewidths=1.0, zorder=7)
        handles.append(Line2D([], [], ls="", marker="*", ms=14, color="yellow", mec="black",
                              label="GNSS lost"))
    handles.append(Line2D([], [], ls="", marker="o", color="white", mec="black", label="start"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3,
              framealpha=0.9, fontsize=9)
    ax.set_aspect("equal")
    # The flight and its fixes with a margin, not the whole map.
    xs = np.concatenate([tx, fx]) if errs else tx
    ys = np.concatenate([ty, fy]) if errs else ty
    pad = max(0.3, 0.12 * max(float(np.ptp(xs)), float(np.ptp(ys))))
    ax.set_xlim(float(xs.min()) - pad, float(xs.max()) + pad)
    ax.set_ylim(float(ys.min()) - pad, float(ys.max()) + pad)
    ax.set_xlabel("east (km on the ground)")
    ax.set_ylabel("north (km on the ground)")
    pct = report.pct_fixed
    med = report.error_median_m
    ax.set_title(title or (
        "Estimator fixes over the reference map: "
        + ("" if pct is None else f"{pct:.0f} % of frames fixed")
        + ("" if med is None else f", median error {med:.1f} m")))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_error(report: AccuracyReport, out: Path, *, start_ns: int | None = None,
               title: str = "") -> Path:
    """Write the error-against-time picture to ``out`` (PNG) and return its path.

    Three panels sharing the time axis: horizontal error with its sigma and 3 sigma,
    then the east and north errors (signed) inside their +-sigma and +-3 sigma bands.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errs = report.errors
    stamps = [e.stamp_ns for e in errs] + [r.stamp_ns for r in report.rejects]
    t0 = start_ns if start_ns is not None else (min(stamps) if stamps else 0)
    fig, axes = plt.subplots(3, 1, figsize=(12, 8.5), dpi=110, sharex=True,
                             gridspec_kw={"height_ratios": [1.4, 1, 1]})
    ax_h, ax_e, ax_n = axes
    t = np.array([(e.stamp_ns - t0) / 1e9 for e in errs])
    err = np.array([e.horizontal_m for e in errs])
    sig = np.array([e.sigma_horizontal_m for e in errs])
    if errs:
        ax_h.fill_between(t, 0, sig, color="tab:blue", alpha=0.25, lw=0, label="0 … \u03c3")
        ax_h.plot(t, 3 * sig, color="tab:blue", lw=0.8, ls="--", label="3\u03c3")
        ax_h.plot(t, err, ".", color="black", ms=4, label="error")
        top = float(max(np.percentile(err, 99) * 1.25, np.percentile(sig, 95) * 1.5, 5.0))
        # Show every error unless a few outliers would squash the rest.
        top = max(top, min(float(err.max()) * 1.1, 3.0 * top))
        for ax, comp, s_comp, name in (
                (ax_e, [e.east_m for e in errs], [e.sigma_east_m for e in errs], "east"),
                (ax_n, [e.north_m for e in errs], [e.sigma_north_m for e in errs], "north")):
            c = np.array(comp)
            sc = np.array(s_comp)
            ax.fill_between(t, -3 * sc, 3 * sc, color="tab:blue", alpha=0.10, lw=0,
                            label="±3\u03c3")
            ax.fill_between(t, -sc, sc, color="tab:blue", alpha=0.28, lw=0, label="±\u03c3")
            ax.plot(t, c, ".", color="black", ms=3.5, label=f"{name} error")
            lim = float(max(np.percentile(np.abs(c), 99) * 1.25,
                            np.percentile(sc, 95) * 3.2, 5.0))
            ax.set_ylim(-lim, lim)
            for sign, marker in ((1.0, "^"), (-1.0, "v")):
                out_of_axis = sign * c > lim
                if np.any(out_of_axis):
                    ax.plot(t[out_of_axis], np.full(int(out_of_axis.sum()), sign * lim * 0.9),
                            marker, color="crimson", ms=6)
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_ylabel(f"{name} error (m)")
    else:
        top = 10.0
        for ax in (ax_e, ax_n):
            ax.set_ylim(-10, 10)
    if report.rejects:
        rt = np.array([(r.stamp_ns - t0) / 1e9 for r in report.rejects])
        ax_h.plot(rt, np.full(rt.shape, top * 0.96), "|", color="red", ms=9, mew=1.2,
                  label=f"rejected frame ({len(report.rejects)})")
    for ax in axes:
        if report.gnss_loss_ns is not None:
            ax.axvline((report.gnss_loss_ns - t0) / 1e9, color="darkorange", lw=2,
                       label="GNSS lost" if ax is ax_h else None)
        if report.longest_gap is not None and report.longest_gap.seconds > 0:
            g = report.longest_gap
            ax.axvspan((g.start_ns - t0) / 1e9, (g.end_ns - t0) / 1e9, color="grey", alpha=0.2,
                       lw=0, label=(f"longest gap without a fix ({g.seconds:.1f} s)"
                                    if ax is ax_h else None))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    ax_h.set_ylim(0, top)
    above = err > top
    if np.any(above):
        ax_h.plot(t[above], np.full(int(above.sum()), top * 0.9), "^", color="crimson",
                  ms=7, label=f"error above the axis ({int(above.sum())}, max "
                              f"{float(err.max()):.0f} m)")
        ax_h.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    ax_h.set_ylabel("horizontal error (m)")
    ax_n.set_xlabel("time since start (s)")
    med, p95 = report.error_median_m, report.error_p95_m
    c1e, c1n = report.within_1sigma_east, report.within_1sigma_north
    ax_h.set_title(title or (
        "Fix error against truth"
        + ("" if med is None or p95 is None else f": median {med:.1f} m, p95 {p95:.1f} m")
        + ("" if c1e is None or c1n is None
           else f"; within 1\u03c3 east {100 * c1e:.0f} %, north {100 * c1n:.0f} %")))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_plots(report: AccuracyReport, truth: Truth, tiles_root: str | Path | None,
                out_dir: str | Path) -> dict[str, Path]:
    """Both pictures into ``out_dir``: ``{"map": .../map.png, "error": .../error.png}``."""
    d = Path(out_dir)
    tiles = tiles_under(tiles_root) if tiles_root is not None else []
    return {
        "map": plot_map(report, truth, tiles, d / "map.png"),
        "error": plot_error(report, d / "error.png", start_ns=truth.start_ns),
    }
