"""What the estimator learnt about its camera, kept on disk across a restart.

Two things are learnt in flight and lost with the process: the camera's
mounting error (:mod:`.boresight`, measured against the GNSS while it is
healthy, kept after its loss) and the lens's vignetting (:mod:`.flat_field`,
measured over frames of new ground). A visual_nav restarted in flight (the
sequencer brings it back up after a crash) resumes its track from the FC
bridge's last fix, but with the GNSS gone it can never learn the mounting
again: a camera 1.5 deg off put every fix after the GNSS's loss 20 m off,
outside 3 sigma. A take-off into jamming can never learn it at all.

So the node writes a :class:`LearntCamera` (JSON, atomically: a reader never
sees half a file, and a kill -9 mid-write leaves the last one whole) and an
estimator restores it for the same camera (intrinsics and stated mount, to the
bit). A remounted camera is learnt afresh while the GNSS is healthy: the
mounting fit measures the whole error whatever correction is in force, and a fit
with no significant tilt clears the correction. After a remount with the GNSS
denied from take-off, delete the file.

Bad files are refused whole (:class:`.errors.LearntCameraError`): the
estimator then starts as if there were none.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gps_denied_onboard.log import log_event
from gps_denied_onboard.visual_nav.boresight import Boresight
from gps_denied_onboard.visual_nav.camera import CameraModel
from gps_denied_onboard.visual_nav.errors import CameraModelError, LearntCameraError
from gps_denied_onboard.visual_nav.flat_field import FlatField, LensRings

if TYPE_CHECKING:  # types only: the estimator does not import this module
    from gps_denied_onboard.visual_nav.estimator import VisualEstimator

#: the file's layout; a file of another version is refused
VERSION = 1

#: a file larger than this is no learnt camera (refused before it is parsed)
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class LearntCamera:
    """The learnt state of one camera, as the estimator had it at ``stamp_ns``.

    Attributes:
        stamp_ns: when it was taken (the estimator's clock: the frames' stamps).
        camera: the intrinsics it was learnt with.
        mount_rotation: the stated mount it was learnt against (the estimator's
            ``mount_rotation``, row-major, from ``mount_rpy_deg``).
        mount_correction_deg: the mounting correction in force (degrees about the
            body's forward and left axes; zeros: none).
        lens: the vignetting measured so far; None before any frame was measured.
    """

    stamp_ns: int
    camera: CameraModel
    mount_rotation: tuple[float, ...]
    mount_correction_deg: tuple[float, float]
    lens: LensRings | None

    def fits(self, camera: CameraModel, mount_rotation: tuple[float, ...]) -> bool:
        """Whether this was learnt on ``camera`` mounted as ``mount_rotation`` states."""
        return self.camera == camera and self.mount_rotation == tuple(mount_rotation)


def learnt_of(
    stamp_ns: int,
    camera: CameraModel,
    mount_rotation: tuple[float, ...],
    boresight: Boresight,
    flat_field: FlatField,
) -> LearntCamera:
    """What ``boresight`` and ``flat_field`` hold for ``camera`` at ``stamp_ns``."""
    return LearntCamera(
        stamp_ns,
        camera,
        tuple(mount_rotation),
        boresight.correction_deg,
        flat_field.rings(camera),
    )


def restore_into(
    state: LearntCamera,
    camera: CameraModel,
    mount_rotation: tuple[float, ...],
    boresight: Boresight,
    flat_field: FlatField,
) -> bool:
    """Put ``state`` into ``boresight`` and ``flat_field`` if it was learnt on
    ``camera`` mounted as ``mount_rotation`` states; False (nothing changed)
    otherwise."""
    if not state.fits(camera, mount_rotation):
        return False
    boresight.restore(state.mount_correction_deg)
    if state.lens is not None:
        flat_field.restore(camera, state.lens)
    return True


def to_json(state: LearntCamera) -> str:
    cam = state.camera
    doc: dict[str, Any] = {
        "version": VERSION,
        "stamp_ns": state.stamp_ns,
        "camera": {
            "width": cam.width,
            "height": cam.height,
            "k": list(cam.k),
            "distortion_model": cam.distortion_model,
            "d": list(cam.d),
        },
        "mount_rotation": list(state.mount_rotation),
        "mount_correction_deg": list(state.mount_correction_deg),
        "lens": None if state.lens is None else asdict(state.lens),
    }
    return json.dumps(doc, allow_nan=False, indent=1)


def from_json(text: str) -> LearntCamera:
    """Parse :func:`to_json`'s output.

    Raises:
        LearntCameraError: not JSON, another version, a field missing, of the
            wrong type or not finite, or a camera that cannot be one.
    """
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise LearntCameraError(f"not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise LearntCameraError("not a JSON object")
    if doc.get("version") != VERSION:
        raise LearntCameraError(f"version {doc.get('version')!r}, expected {VERSION}")
    try:
        cam = doc["camera"]
        camera = CameraModel(
            int(cam["width"]),
            int(cam["height"]),
            _floats(cam["k"], 9),
            str(cam["distortion_model"]),
            _floats(cam["d"]),
        )
        mount = _floats(doc["mount_rotation"], 9)
        correction = _floats(doc["mount_correction_deg"], 2)
        lens_doc = doc["lens"]
        lens = None
        if lens_doc is not None:
            sums, weights = _floats(lens_doc["sums"]), _floats(lens_doc["weights"])
            frames = lens_doc["frames"]
            if len(sums) != len(weights) or not isinstance(frames, int) or frames < 0:
                raise LearntCameraError("lens rings do not match")
            if any(w < 0 for w in weights):
                raise LearntCameraError("negative lens ring weight")
            lens = LensRings(sums, weights, frames)
        stamp = doc["stamp_ns"]
        if not isinstance(stamp, int):
            raise LearntCameraError("stamp_ns is not an integer")
    except LearntCameraError:
        raise
    except CameraModelError as err:
        raise LearntCameraError(f"camera: {err}") from err
    except (KeyError, TypeError, ValueError) as err:
        raise LearntCameraError(f"malformed: {type(err).__name__}: {err}") from err
    return LearntCamera(
        stamp,
        camera,
        mount,
        (correction[0], correction[1]),
        lens,
    )


def _floats(value: Any, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise LearntCameraError(f"expected a list of {n or 'some'} numbers, got {value!r:.80}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise LearntCameraError(f"not a finite number: {v!r:.40}")
        out.append(float(v))
    return tuple(out)


def read_learnt_camera(path: Path) -> LearntCamera:
    """The learnt camera in ``path``.

    Raises:
        FileNotFoundError: there is none (a first flight).
        LearntCameraError: it cannot be read, is too large, or is malformed.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise LearntCameraError(f"cannot read {path}: {err}") from err
    if len(data) > MAX_BYTES:
        raise LearntCameraError(f"{path} is over {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LearntCameraError(f"{path} is not UTF-8") from err
    return from_json(text)


def _temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temps(path: Path) -> int:
    """Remove what writes to ``path`` killed mid-way left beside it (``kill -9``
    between the temporary file and the rename); returns how many. Only one
    process writes a given file, and not while it starts."""
    removed = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def write_learnt_camera(path: Path, state: LearntCamera) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, synced,
    then renamed over it and the directory synced; a crash at any point leaves
    the old file or the new one whole.

    Raises:
        OSError: the directory cannot be created or written.
    """
    text = to_json(state).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_of(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def learnt_by(est: VisualEstimator) -> LearntCamera | None:
    """What ``est`` has learnt for the camera of its last frame; None before a frame."""
    if est.last_camera is None:
        return None
    stamp_ns, camera = est.last_camera
    return learnt_of(stamp_ns, camera, est.cfg.mount_rotation, est.boresight, est.flat_field)


def restore_to(est: VisualEstimator, state: LearntCamera, camera: CameraModel) -> bool:
    """Put ``state`` into ``est`` for its frames from ``camera``; False (nothing changed)
    where it was learnt on another camera or mount."""
    return restore_into(state, camera, est.cfg.mount_rotation, est.boresight, est.flat_field)


class LearntCameraFile:
    """One learnt-camera file as a node keeps it: read at configure, restored into the
    estimator on the first frame of a camera it fits, written as it changes.

    :meth:`take` and :meth:`offer` run on the thread that owns the estimator (the
    node's worker); :meth:`flush` writes on another (the node's timer), so a slow
    disk never holds a frame. Nothing here raises: a file that cannot be read is
    logged and left alone (:meth:`load`), one that cannot be written is logged once
    and tried again each period.
    """

    def __init__(
        self,
        path: Path | None,
        period_ns: int,
        log: logging.Logger,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = path
        self.period_ns = period_ns
        self._log = log
        # a restore, a refusal or another camera as a vnav.learnt_camera flight record:
        # every fix after it depends on it
        self._record = record
        self._loaded: LearntCamera | None = None
        self._taken_for: CameraModel | None = None  # the camera it was restored for
        self._kept: LearntCamera | None = None  # the last state on disk, stamp 0
        self._offered_at: int | None = None
        self._pending: LearntCamera | None = None
        self._lock = threading.Lock()
        self._failing = False

    def load(self) -> None:
        """Read the file (a configure): what :meth:`take` restores from."""
        self._loaded = self._kept = None
        self._taken_for = None
        if self.path is None:
            return
        remove_stale_temps(self.path)
        try:
            state = read_learnt_camera(self.path)
        except FileNotFoundError:
            log_event(self._log, logging.INFO, "vnav.learnt_camera_none", path=str(self.path))
            return
        except LearntCameraError as err:
            self._event(logging.WARNING, "refused", error=str(err))
            return
        self._loaded = state
        self._kept = replace(state, stamp_ns=0)

    def take(self, est: VisualEstimator, camera: CameraModel | None) -> None:
        """Restore what was loaded into ``est`` before its first frame from ``camera``
        (once per camera: the node makes a file and an estimator at each configure)."""
        if self._loaded is None or camera is None or self._taken_for == camera:
            return
        self._taken_for = camera
        state = self._loaded
        if restore_to(est, state, camera):
            self._event(
                logging.INFO,
                "restored",
                forward_deg=round(state.mount_correction_deg[0], 2),
                left_deg=round(state.mount_correction_deg[1], 2),
                lens_frames=state.lens.frames if state.lens else 0,
            )
        else:
            self._event(logging.WARNING, "other_camera", width=camera.width, height=camera.height)

    def _event(self, level: int, event: str, **fields: Any) -> None:
        """Log ``vnav.learnt_camera_<event>`` and record it as ``vnav.learnt_camera``."""
        log_event(self._log, level, f"vnav.learnt_camera_{event}", path=str(self.path), **fields)
        if self._record is not None:
            self._record({"event": event, "path": str(self.path), **fields})

    def offer(self, est: VisualEstimator, stamp_ns: int) -> None:
        """After a fix at ``stamp_ns``: queue what ``est`` has learnt for writing, at most
        once a period and only where it changed."""
        if self.path is None:
            return
        if self._offered_at is not None and 0 <= stamp_ns - self._offered_at < self.period_ns:
            return
        state = learnt_by(est)
        if state is None:
            return
        self._offered_at = stamp_ns
        if replace(state, stamp_ns=0) == self._kept:
            return
        with self._lock:
            self._pending = state

    def flush(self) -> None:
        """Write what :meth:`offer` queued, if anything."""
        with self._lock:
            state, self._pending = self._pending, None
        if state is None or self.path is None:
            return
        try:
            write_learnt_camera(self.path, state)
        except (OSError, ValueError) as err:
            with self._lock:  # tried again next period, unless a newer one came
                self._pending = self._pending or state
            if not self._failing:
                log_event(
                    self._log,
                    logging.WARNING,
                    "vnav.learnt_camera_unwritable",
                    path=str(self.path),
                    error=str(err),
                )
            self._failing = True
            return
        self._failing = False
        self._kept = replace(state, stamp_ns=0)
