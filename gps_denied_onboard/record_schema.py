"""``fdr_record_schema``: the vocabulary of flight-record kinds and payload keys.

The kind names and payload keys are an on-disk contract (investigators'
tools and earlier recordings depend on them): change them only by adding.
Each component owns its own section below. A record of an unknown kind is
rejected (:class:`~gps_denied_onboard.errors.RecordSchemaError`); a record
whose payload carries keys not listed for its kind is written, but flagged
(see :func:`check_payload`), so a newer producer never loses data on an
older recorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gps_denied_onboard.errors import RecordSchemaError

FDR_RECORD_SCHEMA_VERSION: Final = "1.1.0"


@dataclass(frozen=True)
class KindSpec:
    """Payload keys of one record kind: those always present and those optional."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def known(self) -> frozenset[str]:
        return self.required | self.optional


def _k(required: str = "", optional: str = "") -> KindSpec:
    return KindSpec(frozenset(required.split()), frozenset(optional.split()))


# --- flight data recorder (fdr/) --------------------------------------------
FDR_KINDS: dict[str, KindSpec] = {
    "flight_header": _k(
        "flight_id schema_version started_at_ns segment_size_bytes flight_cap_bytes",
        "host software_version",
    ),
    "flight_footer": _k(
        "flight_id closed_at_ns records_written records_dropped_overrun bytes_written "
        "rollover_count",
        "segment_count torn_segments",
    ),
    "overrun": _k("producer count first_stamp_ns last_stamp_ns", "reason kind first_seq last_seq"),
    "segment_rollover": _k("dropped_segment dropped_bytes total_bytes cap_bytes", "segment_index"),
    "cap_misconfigured": _k("cap_bytes reason"),
    "mid_flight_tile_snapshot": _k("tile_id path sha256 bytes", "frame_id zoom x y evicted"),
    "failed_tile_thumbnail": _k("tile_id reason", "path bytes"),
    "raw_nav_frame": _k(),
    "raw_ai_cam_frame": _k(),
    "fdr_degraded": _k("reason errno segment", "free_bytes"),
    "fdr_resumed": _k("segment degraded_for_ns", "records_lost"),
    "writer_stalled": _k("stalled_for_ns", "last_progress_ns"),
    "host_health": _k(
        "cpu_load_1m mem_total_bytes mem_available_bytes flight_root_free_bytes",
        "thermal_c gpu_util_pct gpu_mem_used_bytes gpu_mem_total_bytes gpu_temp_c gpu_power_w nvml "
        "writer_lag_ns writer_lag_max_ns writer_shed_lag",
    ),
    "nvml_unavailable": _k("reason"),
    "raw_topic_refused": _k("topic type reason"),
    "gcs_alert": _k("severity text source"),
    # a node's record publisher, closed (node brought down, exit): its records so far
    "records_closed": _k("published", "records node"),
}

# --- tile cache (tile_cache/) -----------------------------------------------
TILE_CACHE_KINDS: dict[str, KindSpec] = {
    "c6.write": _k("tile_id zoom x y source disk_bytes content_sha256", "flight_id"),
    "c6.write_failed": _k("zoom x y source reason", "tile_id flight_id error"),
    "c6.store.construct": _k(
        "tiles disk_bytes orphan_files_removed orphan_rows_removed temp_files_removed",
        "pending_upload budget_bytes sidecars_rewritten",
    ),
    "c6.evict": _k("tile_id disk_bytes", "reason"),
    "c6.vote": _k("location_hash agree", "tile_id"),
}

# --- FC bridge (fc_bridge/) -------------------------------------------------
FC_BRIDGE_KINDS: dict[str, KindSpec] = {
    "fc.link_up": _k("autopilot sysid compid", "vehicle_type connection mode armed"),
    "fc.link_down": _k("reason", "heartbeat_age_ns"),
    "fc.mode_change": _k("mode", "previous"),
    "fc.armed": _k("", "mode"),
    "fc.disarmed": _k("", "mode"),
    "fc.gnss_health": _k("healthy reason", "fix_type satellites hdop h_acc_m previous"),
    "fc.preflight": _k("ok problems", "output autopilot checked"),
    "fc.origin_set": _k("latitude longitude altitude_msl"),
    "fc.statustext_forwarded": _k("severity text", "source messages"),
    "fc.autopilot_reboot": _k("previous_boot_ms boot_ms", "message"),
    "fc.relocalisation": _k(
        "accepted reset_counter", "wire_reset_counter jump_m quality h_acc_m reason method"
    ),
}

# --- take-off sequencer (takeoff/) ------------------------------------------
TAKEOFF_KINDS: dict[str, KindSpec] = {
    "takeoff.transition": _k("node transition state", "step"),
    "takeoff.fdr_open_failed": _k("reason", "flight_root"),
    "takeoff.aborted": _k("failed_step reason"),
    "takeoff.active": _k("nodes"),
    "takeoff.shutdown": _k("reason"),
    "takeoff.migrations": _k("applied from_revision to_revision"),
    "takeoff.recorder_lost": _k("reason", "silent_for_ns"),
    "takeoff.recorder_recovered": _k("silent_for_ns"),
    "takeoff.heartbeat": _k("seq phase"),
    "takeoff.node_revived": _k("node from_state"),
}

# --- visual position estimator (visual_nav/) ---------------------------------
VISUAL_NAV_KINDS: dict[str, KindSpec] = {
    "vnav.fix": _k(
        "latitude longitude sigma_m quality margin score",
        "altitude_msl height_m height_source heading_offset_deg scale search_radius_m "
        "prior_source latency_ms reset_counter velocity_valid footprint_m margin_sigmas "
        "stitch_lever_m quadrant_spread_m frame_offset_m agreement colour_support "
        "intensity_support evidence gnss_offset_m gnss_scale gnss_scale_sigma gnss_heading_deg "
        "gnss_heading_sigma_deg map_pixel_m resolution_m",
    ),
    "vnav.reject": _k(
        "reason",
        "message margin margin_sigmas score search_radius_m age_ms gap_ms latency_ms "
        "agreement colour_support intensity_support evidence template_side_m on_edge height_m "
        "jump_m frame_offset_m",
    ),
    "vnav.relocalized": _k("jump_m reset_counter", "sigma_m prior_source"),
    "vnav.map_loaded": _k("zoom tiles missing", "centre_latitude centre_longitude size_m"),
    # learnt_camera_file: restored (with what), refused (why), or of another camera
    "vnav.learnt_camera": _k("event path", "forward_deg left_deg lens_frames error width height"),
}

KNOWN_KINDS: Final[Mapping[str, KindSpec]] = {
    **FDR_KINDS,
    **TILE_CACHE_KINDS,
    **FC_BRIDGE_KINDS,
    **TAKEOFF_KINDS,
    **VISUAL_NAV_KINDS,
}


def check_payload(kind: str, payload: Mapping[str, Any]) -> frozenset[str]:
    """Validate ``payload`` against ``kind``'s keys.

    Returns:
        The payload keys the schema does not know for this kind (to be flagged).

    Raises:
        RecordSchemaError: the kind is unknown or a required key is missing.
    """
    spec = KNOWN_KINDS.get(kind)
    if spec is None:
        raise RecordSchemaError(f"unknown record kind {kind!r}", kind=kind)
    keys = frozenset(payload)
    missing = spec.required - keys
    if missing:
        raise RecordSchemaError(
            f"record kind {kind!r} is missing payload keys {sorted(missing)}", kind=kind
        )
    return keys - spec.known
