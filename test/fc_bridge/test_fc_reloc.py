"""RelocGate: sure jumps pass at once with a new wire counter, unsure ones are held back."""

from __future__ import annotations

import dataclasses

from gps_denied_onboard.fc_bridge.fix import PositionFix
from gps_denied_onboard.fc_bridge.reloc import RelocGate, horizontal_distance_m
from gps_denied_onboard.record_schema import check_payload

T0 = 1_778_544_000 * 1_000_000_000
MS = 1_000_000
LAT, LON = 47.0, 8.0
M_LAT = 1.0 / 111_195.0  # degrees of latitude per metre (equirectangular sphere)


def fix(
    i: int, north_m: float = 0.0, *, counter: int = 0, quality: int = 90, var: float = 4.0
) -> PositionFix:
    return PositionFix(
        T0 + i * 100 * MS,
        LAT + north_m * M_LAT,
        LON,
        400.0,
        position_cov_enu=(var, 0.0, 0.0, 0.0, var, 0.0, 0.0, 0.0, 9.0),
        reset_counter=counter,
        quality=quality,
    )


def test_fixes_without_a_bump_pass_unchanged_with_the_wire_counter() -> None:
    gate = RelocGate()
    for i in range(3):
        adm = gate.admit(fix(i, counter=7))
        assert adm.fix is not None and not adm.reset and adm.record is None
        assert adm.fix.reset_counter == 7  # the wire counter starts at the estimator's


def test_a_sure_jump_is_accepted_at_once_and_bumps_the_wire_counter() -> None:
    gate = RelocGate()
    gate.admit(fix(0))
    adm = gate.admit(fix(1, 30.0, counter=1, quality=80, var=4.0))
    assert adm.fix is not None and adm.reset
    assert adm.fix.reset_counter == 1
    assert adm.record is not None
    assert adm.record["accepted"] is True and adm.record["reason"] == "sure"
    assert abs(adm.record["jump_m"] - 30.0) < 0.1
    check_payload("fc.relocalisation", adm.record)
    after = gate.admit(fix(2, 30.0, counter=1))
    assert after.fix is not None and not after.reset and after.fix.reset_counter == 1


def test_an_unsure_jump_is_held_until_consistent_fixes_confirm_it() -> None:
    gate = RelocGate(confirm_fixes=3, confirm_radius_m=5.0)
    gate.admit(fix(0))
    first = gate.admit(fix(1, 30.0, counter=1, quality=20))  # low quality
    assert first.fix is None and first.record is not None
    assert first.record["accepted"] is False and first.record["reason"] == "unsure"
    check_payload("fc.relocalisation", first.record)
    second = gate.admit(fix(2, 31.0, counter=1, quality=20))
    assert second.fix is None and second.record is None  # one record per held jump
    third = gate.admit(fix(3, 32.0, counter=1, quality=20))
    assert third.fix is not None and third.reset
    assert third.record is not None and third.record["reason"] == "confirmed"
    assert third.fix.reset_counter == 1
    assert gate.held == 2 and gate.accepted == 1


def test_an_unsure_jump_that_wanders_is_never_confirmed() -> None:
    gate = RelocGate(confirm_fixes=3, confirm_radius_m=5.0)
    gate.admit(fix(0))
    for i, north in enumerate((30.0, 80.0, 130.0, 180.0), start=1):  # 50 m per 100 ms
        assert gate.admit(fix(i, north, counter=1, quality=90, var=400.0)).fix is None
    assert gate.accepted == 0


def test_a_withdrawn_jump_is_never_sent() -> None:
    gate = RelocGate()
    gate.admit(fix(0))
    assert gate.admit(fix(1, 30.0, counter=1, var=900.0)).fix is None  # 30 m sigma: unsure
    back = gate.admit(fix(2, 0.5, counter=0))
    assert back.fix is not None and not back.reset and back.fix.reset_counter == 0
    assert back.record is not None and back.record["reason"] == "withdrawn"
    assert gate.withdrawn == 1


def test_distance() -> None:
    assert abs(horizontal_distance_m(fix(0), fix(0, 100.0)) - 100.0) < 0.01


def test_distance_across_the_antimeridian_is_the_short_way_round() -> None:
    """Fixes 0.001 deg either side of 180 deg (at 16.8 S, 213 m apart): a jump held
    there is confirmed by its neighbours, not measured as most of the world."""
    west = dataclasses.replace(fix(0), latitude_deg=-16.8, longitude_deg=179.999)
    east = dataclasses.replace(west, longitude_deg=-179.999)
    assert abs(horizontal_distance_m(west, east) - 212.9) < 0.5
    assert abs(horizontal_distance_m(east, west) - 212.9) < 0.5
    gate = RelocGate(confirm_fixes=2, confirm_radius_m=300.0)
    gate.admit(west)
    held = dataclasses.replace(west, capture_ns=T0 + 100 * MS, reset_counter=1, quality=20)
    assert gate.admit(held).fix is None
    across = dataclasses.replace(east, capture_ns=T0 + 200 * MS, reset_counter=1, quality=20)
    confirmed = gate.admit(across)
    assert confirmed.fix is not None and confirmed.reset
    assert confirmed.record is not None and confirmed.record["jump_m"] < 300.0
