"""North-up GeoTIFF rasters (such as the NAIP clips): pixels and placement.

A thin layer over the libraries made for it: tifffile reads the pixels and
the GeoTIFF keys (ModelPixelScale, ModelTiepoint, ProjectedCSTypeGeoKey),
pyproj does every coordinate transform. This module only adds the affine
pixel <-> projected-coordinate arithmetic of a north-up raster.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

F64 = NDArray[np.float64]


class GeoTiffError(ValueError):
    """The file is not a north-up, projected GeoTIFF this module can place."""


class GeoTiffTooLarge(GeoTiffError):
    """The GeoTIFF's decoded pixels would take more memory than allowed."""


@lru_cache(maxsize=16)
def _transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(src_epsg), CRS.from_epsg(dst_epsg), always_xy=True)


@dataclass(frozen=True)
class GeoRef:
    """Placement of a north-up raster: pixel (col, row) -> projected (x, y).

    ``x = origin_x + col * scale_x``, ``y = origin_y - row * scale_y`` for
    pixel corners (GeoTIFF PixelIsArea). ``epsg`` is the projected CRS.
    """

    origin_x: float
    origin_y: float
    scale_x: float
    scale_y: float
    width: int
    height: int
    epsg: int

    def pixel_of(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Projected (x, y) -> fractional pixel (col, row), pixel centres at .5.

        Scalars or numpy arrays alike.
        """
        return (x - self.origin_x) / self.scale_x, (self.origin_y - y) / self.scale_y

    def xy_of(self, col: Any, row: Any) -> tuple[Any, Any]:
        """Fractional pixel (col, row) -> projected (x, y); inverse of :meth:`pixel_of`."""
        return self.origin_x + col * self.scale_x, self.origin_y - row * self.scale_y

    def from_wgs84(self, lat: Any, lon: Any) -> tuple[F64, F64]:
        """Latitude/longitude (degrees, arrays or scalars) -> projected (x, y), by pyproj."""
        x, y = _transformer(4326, self.epsg).transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_wgs84(self, x: Any, y: Any) -> tuple[F64, F64]:
        """Projected (x, y) -> latitude, longitude (degrees), by pyproj."""
        lon, lat = _transformer(self.epsg, 4326).transform(
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        )
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def corners_wgs84(self) -> list[tuple[float, float]]:
        """(lat, lon) of the four outer corners."""
        xs = (self.origin_x, self.origin_x + self.width * self.scale_x)
        ys = (self.origin_y, self.origin_y - self.height * self.scale_y)
        out = []
        for x in xs:
            for y in ys:
                lat, lon = self.to_wgs84(x, y)
                out.append((float(lat), float(lon)))
        return out

    def center_wgs84(self) -> tuple[float, float]:
        """(lat, lon) of the raster's centre."""
        lat, lon = self.to_wgs84(*self.xy_of(self.width / 2.0, self.height / 2.0))
        return float(lat), float(lon)


def _georef(tif: Any, path: Path) -> GeoRef:
    meta = tif.geotiff_metadata
    if not meta:
        raise GeoTiffError(f"{path}: no GeoTIFF keys")
    try:
        scale = meta["ModelPixelScale"]
        tie = meta["ModelTiepoint"]
        epsg = int(meta["ProjectedCSTypeGeoKey"])
    except KeyError as err:
        raise GeoTiffError(
            f"{path}: GeoTIFF key {err} missing (not a north-up projected raster)"
        ) from err
    if "ModelTransformation" in meta:
        raise GeoTiffError(f"{path}: rotated rasters (ModelTransformation) are not supported")
    page = tif.pages[0]
    i_px, j_px, x, y = float(tie[0]), float(tie[1]), float(tie[3]), float(tie[4])
    return GeoRef(
        origin_x=x - i_px * float(scale[0]),
        origin_y=y + j_px * float(scale[1]),
        scale_x=float(scale[0]),
        scale_y=float(scale[1]),
        width=int(page.shape[1]),
        height=int(page.shape[0]),
        epsg=epsg,
    )


def read_georef(path: str | Path) -> GeoRef:
    """The georeference of a north-up GeoTIFF (first image).

    Raises:
        GeoTiffError: not a GeoTIFF, or not north-up and projected.
    """
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            return _georef(tif, p)
    except tifffile.TiffFileError as err:
        raise GeoTiffError(f"{p}: {err}") from err


def read_geotiff(
    path: str | Path, *, max_bytes: int | None = None
) -> tuple[NDArray[np.uint8], GeoRef]:
    """Pixels (rows x cols x bands, as stored: NAIP is R, G, B, NIR) and georeference.

    ``max_bytes``: the most the decoded pixels may take (None: no limit). The size
    the file declares is checked before a pixel is read: a county mosaic, or a
    header declaring 100,000 px a side, would otherwise be decoded whole, and on the
    aircraft's companion computer the kernel's out-of-memory killer picks a victim
    that may be the flight recorder.

    Raises:
        GeoTiffError: not a GeoTIFF, or not north-up and projected.
        GeoTiffTooLarge: its decoded pixels over ``max_bytes``.
    """
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            geo = _georef(tif, p)
            page = tif.pages[0]
            if max_bytes is not None and int(page.nbytes) > max_bytes:
                shape = " x ".join(str(int(v)) for v in page.shape)
                raise GeoTiffTooLarge(
                    f"{p}: its image ({shape} of {page.dtype}) takes "
                    f"{int(page.nbytes) / 2**20:.0f} MiB decoded, more than the "
                    f"{max_bytes / 2**20:.0f} MiB allowed"
                )
            image = np.asarray(page.asarray())
    except tifffile.TiffFileError as err:
        raise GeoTiffError(f"{p}: {err}") from err
    if image.ndim == 2:
        image = image[:, :, None]
    return image, geo
