"""An operator's orthophoto GeoTIFF cut into the cache's tiles: real PostgreSQL, real files."""

from __future__ import annotations

import io
import json
from calendar import timegm
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pyproj import CRS, Transformer

from gps_denied_onboard.tile_cache.config import TileCacheConfig
from gps_denied_onboard.tile_cache.errors import TileValidationError
from gps_denied_onboard.tile_cache.orthophoto_import import (
    BATCH,
    ImportReport,
    default_zooms,
    import_orthophotos,
)
from gps_denied_onboard.tile_cache.store import PostgresFilesystemStore
from gps_denied_onboard.tile_cache.tools import main
from gps_denied_onboard.visual_nav.orthophoto import (
    Orthophoto,
    render_map,
    tile_addresses,
    tile_grid,
)
from gps_denied_onboard.visual_nav.simulate import NAIP_FILES, cut_tiles

NAIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "naip" / NAIP_FILES["2017"]
CAPTURED_NS = timegm((2017, 8, 27, 0, 0, 0)) * 1_000_000_000


@pytest.fixture(scope="module")
def naip_2017() -> Orthophoto:
    if not NAIP.exists():
        pytest.skip(f"NAIP orthophoto not found at {NAIP}")
    return Orthophoto.read(NAIP)


def _jpeg_pixels(data: bytes) -> np.ndarray:
    return np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_the_tiles_covering_an_orthophoto_are_stored_once_with_its_date(
    store: PostgresFilesystemStore, naip_2017: Orthophoto
) -> None:
    # the zooms visual_nav reads at 5 m (z15 at 47 N, 3.3 m, and z14), and finer ones as far
    # as the images hold the detail: none for 5 m pixels, down to z17 (0.8 m) for 0.6 m
    assert default_zooms([naip_2017]) == (15, 14)
    assert default_zooms([replace(naip_2017, pixel_size=0.6)]) == (17, 16, 15, 14)
    assert default_zooms([naip_2017, replace(naip_2017, pixel_size=0.3)]) == (18, 17, 16, 15, 14)
    assert default_zooms([naip_2017], resolution_m=10.0) == (14, 13)
    first = import_orthophotos(
        store, [naip_2017], source="naip", captured_at_ns=CAPTURED_NS, zooms=(15, 14)
    )
    covering = {z: len(tile_addresses(naip_2017, z)) for z in (15, 14)}
    assert first.covering == covering
    assert first.stored + first.empty == sum(covering.values()) and first.held == 0
    assert first.stored > 40 and first.evicted == 0
    assert store.stats().tiles == first.stored

    # each tile holds the orthophoto resampled as the benchmarks' tiles are (no
    # reduction at 5 m: a z15 or z14 pixel spans under two of the orthophoto's)
    want = cut_tiles(naip_2017, 15)
    for (z, x, y), pixels in list(want.items())[::7]:
        got = store.get_tile(z, x, y, "naip")
        assert np.array_equal(_jpeg_pixels(got.data), pixels), (z, x, y)
        assert got.meta.captured_at_ns == CAPTURED_NS and got.meta.flight_id is None
        assert got.meta.quality["gsd_m"] == pytest.approx(5.0, abs=0.05)

    second = import_orthophotos(
        store, [naip_2017], source="naip", captured_at_ns=CAPTURED_NS, zooms=(15, 14)
    )
    assert (second.stored, second.held) == (0, first.stored)
    assert store.stats().tiles == first.stored


def test_an_import_stopped_part_way_is_finished_by_running_it_again(
    store: PostgresFilesystemStore, naip_2017: Orthophoto
) -> None:
    class Stop(Exception):
        pass

    def stop_after_one_batch(report: ImportReport) -> None:
        raise Stop

    with pytest.raises(Stop):
        import_orthophotos(
            store,
            [naip_2017],
            source="naip",
            captured_at_ns=CAPTURED_NS,
            zooms=(15,),
            progress=stop_after_one_batch,
        )
    assert store.stats().tiles == BATCH  # the batch committed whole, nothing after it
    rest = import_orthophotos(
        store, [naip_2017], source="naip", captured_at_ns=CAPTURED_NS, zooms=(15,)
    )
    assert rest.held == BATCH
    assert store.stats().tiles == BATCH + rest.stored == rest.covering[15] - rest.empty


def _halves(ortho: Orthophoto) -> tuple[Orthophoto, Orthophoto]:
    """``ortho`` cut into a west and an east image that meet without overlap."""
    c = ortho.pixels.shape[1] // 2 + 3
    west = replace(ortho, pixels=np.ascontiguousarray(ortho.pixels[:, :c]))
    east = replace(
        ortho,
        pixels=np.ascontiguousarray(ortho.pixels[:, c:]),
        origin_x=ortho.origin_x + c * ortho.pixel_size,
    )
    return west, east


def test_two_quads_imported_together_make_the_tiles_where_they_meet_from_both(
    store: PostgresFilesystemStore, naip_2017: Orthophoto
) -> None:
    """Each pixel from the image that covers it wholly, and along the seam the two
    bilinear shares summed: the tiles are the whole image's (to JPEG's noise). One
    import per half would have stored the seam tiles from the west half alone, black
    beyond its edge, and kept them so."""
    west, east = _halves(naip_2017)
    report = import_orthophotos(
        store, [west, east], source="naip", captured_at_ns=CAPTURED_NS, zooms=(15,)
    )
    assert report.covering[15] == len(tile_addresses(naip_2017, 15)) == report.stored
    whole = cut_tiles(naip_2017, 15)  # the same JPEG round trip, from the one image
    ones = replace(naip_2017, pixels=np.full(naip_2017.pixels.shape[:2], 255, np.uint8))
    seam_tiles = 0
    for (z, x, y), want in whole.items():
        inside = render_map(ones, tile_grid(z, x, y)) == 255  # the image's own pixels
        got = _jpeg_pixels(store.get_tile(z, x, y, "naip").data)
        diff = np.abs(got.astype(int) - want.astype(int))[inside]
        assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 6, (z, x, y, diff.max())
        west_alone = render_map(west, tile_grid(z, x, y))[inside]
        seam_tiles += int(np.count_nonzero(~west_alone.any(axis=1)) > 1000 and west_alone.any())
    assert seam_tiles >= 3  # tiles across the seam were checked, not only whole ones


def _checkerboard(square_m: float, pixel_m: float, size_m: float) -> Orthophoto:
    """A black-and-white checkerboard of ``square_m`` squares, in web mercator at 47 N."""
    k = 1.0 / np.cos(np.radians(47.0))
    n = int(size_m / pixel_m)
    idx = (np.arange(n) * pixel_m // square_m).astype(int)
    board = ((idx[:, None] + idx[None, :]) % 2 * 255).astype(np.uint8)
    cx, cy = Transformer.from_crs(
        CRS.from_epsg(4326), CRS.from_epsg(3857), always_xy=True
    ).transform(-99.155, 47.0)
    return Orthophoto(
        np.ascontiguousarray(cv2.cvtColor(board, cv2.COLOR_GRAY2BGR)),
        CRS.from_epsg(3857),
        cx - n / 2 * pixel_m * k,
        cy + n / 2 * pixel_m * k,
        pixel_m * k,
    )


def test_a_fine_orthophoto_is_averaged_down_to_a_coarse_tile_not_aliased(
    store: PostgresFilesystemStore,
) -> None:
    """Half-metre squares under a z16 tile (1.6 m a pixel at 47 N): bilinear sampling
    alone picks black or white pixels (moire the matcher would correlate); averaged
    first, the tile is the board's mean grey."""
    board = _checkerboard(0.5, 0.5, 700.0)
    assert board.ground_pixel_m() == pytest.approx(0.5, rel=0.01)
    report = import_orthophotos(store, [board], source="survey", captured_at_ns=0, zooms=(16,))
    assert report.stored >= 1
    checked = 0
    for z, x, y in tile_addresses(board, 16):
        if store.find(z, x, y, "survey") is None:
            continue
        px = _jpeg_pixels(store.get_tile(z, x, y, "survey").data)[:, :, 0]
        aliased = render_map(board, tile_grid(z, x, y))[:, :, 0]
        # the tile's pixels over the board, clear of its edge's blend with no-data
        inside = cv2.erode(((px > 0) & (aliased > 0)).astype(np.uint8), np.ones((9, 9))) > 0
        if inside.sum() < 1000:
            continue
        checked += 1
        assert abs(float(px[inside].mean()) - 127.5) < 10, (z, x, y, px[inside].mean())
        assert float(px[inside].std()) < 12 < 30 < float(aliased[inside].std()), (
            px[inside].std(),
            aliased[inside].std(),
        )
    assert checked >= 1


def test_a_zoom_out_of_range_or_a_source_the_store_refuses_is_a_typed_error(
    store: PostgresFilesystemStore,
) -> None:
    board = _checkerboard(20.0, 5.0, 1000.0)
    for zooms in ((23,), (-1,), ()):
        with pytest.raises(TileValidationError):
            import_orthophotos(store, [board], source="naip", captured_at_ns=0, zooms=zooms)
    with pytest.raises(TileValidationError):
        import_orthophotos(store, [board], source="no such/source", captured_at_ns=0, zooms=(15,))
    assert store.stats().tiles == 0


def test_a_misplaced_orthophoto_covering_too_many_tiles_is_refused_before_any_work(
    store: PostgresFilesystemStore,
) -> None:
    """A pixel size in degrees read as metres, or a continent-wide raster at a fine zoom,
    would make millions of tiles: refused up front, nothing stored."""
    board = _checkerboard(20.0, 5.0, 1000.0)
    huge = replace(board, pixel_size=board.pixel_size * 2000)  # 1000 px of 10 km: 10,000 km
    with pytest.raises(TileValidationError, match="more than"):
        import_orthophotos(store, [huge], source="naip", captured_at_ns=0, zooms=(15,))
    nowhere = replace(board, origin_y=1e12)  # past every latitude
    with pytest.raises(TileValidationError, match="cannot be placed"):
        import_orthophotos(store, [nowhere], source="naip", captured_at_ns=0, zooms=(15,))
    assert store.stats().tiles == 0


def _cli(cfg: TileCacheConfig, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--dsn", cfg.dsn, "--tile-root", str(cfg.tile_root), *argv], out=out)
    return code, out.getvalue()


def test_the_operator_imports_a_geotiff_from_the_command_line(
    tile_config: TileCacheConfig, naip_2017: Orthophoto, tmp_path: Path
) -> None:
    args = ("import", str(NAIP), "--source", "naip", "--captured", "2017-08-27", "--zoom", "14")
    code, out = _cli(tile_config, *args, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["stored"] == len(tile_addresses(naip_2017, 14)) - report["empty"] > 10
    code, out = _cli(tile_config, "dump", "--stats", "--json")
    assert code == 0 and json.loads(out)["tiles"] == report["stored"]
    code, out = _cli(tile_config, *args)
    assert code == 0 and "0 tiles stored" in out and f"{report['stored']} already held" in out

    not_a_tiff = tmp_path / "map.tif"
    not_a_tiff.write_bytes(b"not a GeoTIFF")
    code, _ = _cli(
        tile_config, "import", str(not_a_tiff), "--source", "naip", "--captured", "2017-08-27"
    )
    assert code == 2
    code, _ = _cli(tile_config, *args[:-2], "--zoom", "23")  # a zoom past 22
    assert code == 2
    with pytest.raises(SystemExit) as bad_date:
        _cli(tile_config, "import", str(NAIP), "--source", "naip", "--captured", "27/08/2017")
    assert bad_date.value.code == 2


def test_images_too_large_to_decode_are_refused_before_a_pixel_is_read(
    tile_config: TileCacheConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The size a GeoTIFF declares is checked against --max-decoded-mb before its pixels
    are decoded (a header declaring 100,000 px a side would otherwise be allocated), and
    the images of one run share the budget: they are held together for their seams."""
    import tifffile

    naip_2014 = NAIP.with_name(NAIP_FILES["2014"])
    args = ("import", str(NAIP), "--source", "naip", "--captured", "2017-08-27")
    assert tifffile.TiffFile(NAIP).pages[0].nbytes > 2**20  # 724 x 934 x 4 bytes

    def decoded(*_: object, **__: object) -> None:
        raise AssertionError("pixels decoded past the budget")

    with monkeypatch.context() as m:
        m.setattr(tifffile.TiffPage, "asarray", decoded)
        code, _ = _cli(tile_config, *args, "--max-decoded-mb", "1")
    assert code == 2
    err = capsys.readouterr().err
    assert "MiB decoded, more than the 1 MiB allowed" in err and "gdalwarp -tr" in err

    # each of the two fits 3 MiB, both do not (the first kept as 8-bit BGR: 1.9 MiB)
    code, _ = _cli(tile_config, *args[:2], str(naip_2014), *args[2:], "--max-decoded-mb", "3")
    assert code == 2
    assert str(naip_2014) in capsys.readouterr().err

    def tiles() -> int:
        code, out = _cli(tile_config, "dump", "--stats", "--json")
        assert code == 0
        return int(json.loads(out)["tiles"])

    assert tiles() == 0
    code, _ = _cli(tile_config, *args, "--max-decoded-mb", "3")
    assert code == 0 and tiles() > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_an_import_killed_mid_run_is_finished_by_the_next_and_every_tile_verifies(
    tile_config: TileCacheConfig, seed: int
) -> None:
    """kill -9 of the tool at a moment after its first batch landed (seeded): the next
    run stores the rest, none twice, and every file on disk re-hashes to its row."""
    import random
    import signal
    import subprocess
    import sys
    import time

    import psycopg

    zooms = ("--zoom", "17", "--zoom", "16")  # about 500 tiles: a few seconds of work
    args = ("import", str(NAIP), "--source", "naip", "--captured", "2017-08-27", *zooms)
    root = ("--dsn", tile_config.dsn, "--tile-root", str(tile_config.tile_root))
    tool = [sys.executable, "-m", "gps_denied_onboard.tile_cache.tools", *root, *args]

    def stored() -> int:
        with psycopg.connect(tile_config.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM tiles WHERE source = 'naip'").fetchone()
            return int(row[0]) if row else 0

    proc = subprocess.Popen(tool, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while stored() < BATCH and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(random.Random(seed).uniform(0.0, 0.5))
        assert proc.poll() is None, "the import ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = stored()
    assert before >= BATCH

    code, out = _cli(tile_config, *args, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["held"] == before and report["stored"] > 0
    assert report["held"] + report["stored"] + report["empty"] == sum(report["covering"].values())
    assert stored() == report["held"] + report["stored"]
    code, out = _cli(tile_config, "verify", "--json")
    assert code == 0, out
    assert json.loads(out)["ok"] == stored()
    leftovers = [p for p in tile_config.tile_root.rglob("*") if ".tmp-" in p.name]
    assert not leftovers


def test_an_import_while_the_node_holds_the_tile_root_fails_and_changes_nothing(
    store: PostgresFilesystemStore, tile_config: TileCacheConfig, naip_2017: Orthophoto
) -> None:
    code, _ = _cli(tile_config, "import", str(NAIP), "--source", "naip", "--captured", "2017-08-27")
    assert code == 3
    assert store.stats().tiles == 0
