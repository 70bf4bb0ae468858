"""A frame is answered from the samples of its capture time, not from the newest.

The FC stream goes on while a frame waits for its attitude and is matched, so
which samples have arrived when the estimator answers depends on the machine's
speed and the replay rate. Height, the GNSS prior and the GNSS verdict are
looked up by stamp, so the answer for a frame does not depend on what arrived
after it, nor on the order things arrived in.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_denied_onboard.visual_nav.estimator import VisualEstimator
from gps_denied_onboard.visual_nav.geo import LocalFrame
from gps_denied_onboard.visual_nav.mapview import DictTileSource
from gps_denied_onboard.visual_nav.settings import EstimatorConfig
from gps_denied_onboard.visual_nav.state import AttitudeBuffer, HeightSource

from .support import LAT0, LON0, T0

MS = 1_000_000
HOME_MSL = 580.0
LEVEL = np.eye(3)  # R_ENU_from_FLU of a level aircraft facing east
#: a climb at 7 m/s, AMSL sampled every 200 ms
CLIMB = [(T0 + k * 200 * MS, HOME_MSL + 200.0 + 1.4 * k) for k in range(10)]


def _height(samples: list[tuple[int, float]], stamp: int) -> float:
    h = HeightSource(ground_elevation_msl=HOME_MSL)
    for t, amsl in samples:
        h.add_altitude_msl(t, amsl)
    return h.at(stamp, tilt_cos=1.0).height_m


def test_height_in_a_climb_is_the_altitude_at_the_frame_stamp_not_the_newest() -> None:
    frame = T0 + 300 * MS  # between the samples at 200 and 400 ms
    early = _height(CLIMB[:2], frame)  # only the samples up to the frame arrived
    late = _height(CLIMB, frame)  # the climb went on 1.5 s before the frame was answered
    assert early == pytest.approx(200.0 + 1.4 * 1.5)  # carried on from 201.4 at 7 m/s
    assert late == pytest.approx(early)


def test_rangefinder_height_is_carried_to_the_frame_stamp() -> None:
    h = HeightSource(ground_elevation_msl=HOME_MSL)
    h.add_altitude_msl(T0, HOME_MSL + 300.0)
    h.add_range(T0 - 100 * MS, 99.0, 0.2, 700.0)
    h.add_range(T0, 100.0, 0.2, 700.0)
    h.add_range(T0 + 400 * MS, 130.0, 0.2, 700.0)  # after the frame: not the frame's
    got = h.at(T0 + 50 * MS, tilt_cos=1.0)
    assert got.source == "rangefinder"
    assert got.height_m == pytest.approx(100.5)


def test_a_stalled_altitude_stream_is_not_carried_on_climbing() -> None:
    """The FC's altitude stops coming 1.6 s before the frame (within the 2 s it is
    still used for): the climb is carried one sample interval on, no further."""
    got = _height(CLIMB[:2], T0 + 1800 * MS)  # samples at 0 and 200 ms, 7 m/s
    assert got == pytest.approx(200.0 + 2 * 1.4)


@settings(max_examples=50, deadline=None)
@given(frame_ms=st.integers(0, 1800), later=st.sets(st.integers(0, len(CLIMB) - 1)))
def test_height_does_not_depend_on_which_later_samples_arrived(
    frame_ms: int, later: set[int]
) -> None:
    """Why: a frame is answered once its attitude came, and whether the FC's next
    altitude came too depends on the machine and a replay's rate. The samples up to
    the frame's stamp are there (sent before that attitude on the same link); any of
    those after it may be, or not. On an uneven climb too."""
    bumpy = [(t, amsl + 0.3 * (k % 3)) for k, (t, amsl) in enumerate(CLIMB)]
    frame = T0 + frame_ms * MS
    upto = [s for s in bumpy if s[0] <= frame]
    some_after = [s for k, s in enumerate(bumpy) if s[0] > frame and k in later]
    assert _height(upto + some_after, frame) == _height(bumpy, frame)


@settings(max_examples=50, deadline=None)
@given(order=st.permutations(range(len(CLIMB))), frame_ms=st.integers(0, 1800))
def test_height_does_not_depend_on_the_arrival_order(order: list[int], frame_ms: int) -> None:
    frame = T0 + frame_ms * MS
    assert _height([CLIMB[i] for i in order], frame) == pytest.approx(_height(CLIMB, frame))


def _estimator() -> VisualEstimator:
    return VisualEstimator(EstimatorConfig(ground_elevation_msl=HOME_MSL), DictTileSource())


def _east_of_origin(est: VisualEstimator, stamp: int) -> tuple[float, str]:
    prior = est.prior_at(stamp)
    assert prior is not None
    e, n = LocalFrame(LAT0, LON0).to_en(prior.latitude, prior.longitude)
    assert abs(n) < 1e-3
    return e, prior.source


def test_gnss_prior_starts_from_the_sample_before_the_frame_not_the_newest() -> None:
    est = _estimator()
    lat1, lon1 = LocalFrame(LAT0, LON0).to_latlon(23.0, 0.0)  # 3 m off the dead reckoning
    est.priors.add_gnss(T0, LAT0, LON0, healthy=True, sigma_m=5.0, velocity_en=(20.0, 0.0))
    before = _east_of_origin(est, T0 + 500 * MS)
    est.priors.add_gnss(
        T0 + 1000 * MS, lat1, lon1, healthy=True, sigma_m=5.0, velocity_en=(20.0, 0.0)
    )
    assert _east_of_origin(est, T0 + 500 * MS) == pytest.approx(before)
    assert before[0] == pytest.approx(10.0, abs=1e-3)  # 0.5 s at 20 m/s from the first
    # a frame after the second sample starts from it
    assert _east_of_origin(est, T0 + 1500 * MS)[0] == pytest.approx(33.0, abs=1e-3)


def test_gnss_verdict_is_the_one_in_force_at_the_frame_stamp() -> None:
    est = _estimator()
    est.priors.seed(T0, LAT0, LON0, 50.0)
    est.priors.add_gnss(T0, LAT0, LON0, healthy=True, sigma_m=5.0)
    est.set_gnss_healthy(False, T0 + 1000 * MS)  # the FC gave up on its GNSS at 1 s
    assert _east_of_origin(est, T0 + 500 * MS)[1] == "fc_gnss"  # still trusted then
    assert _east_of_origin(est, T0 + 1500 * MS)[1] == "seed"
    est.set_gnss_healthy(True)  # no stamp: from now on, whatever was said before
    assert _east_of_origin(est, T0 + 1500 * MS)[1] == "fc_gnss"


GNSS_STREAM = [(T0 + k * 200 * MS, 4.0 * k, k < 6) for k in range(10)]  # lost after 1.0 s


@settings(max_examples=50, deadline=None)
@given(order=st.permutations(range(len(GNSS_STREAM))), frame_ms=st.integers(0, 2000))
def test_prior_does_not_depend_on_the_arrival_order(order: list[int], frame_ms: int) -> None:
    def prior(indices: list[int]) -> tuple[float, str]:
        est = _estimator()
        est.priors.seed(T0, LAT0, LON0, 80.0)
        for i in indices:
            t, east, healthy = GNSS_STREAM[i]
            lat, lon = LocalFrame(LAT0, LON0).to_latlon(east, 0.0)
            est.priors.add_gnss(t, lat, lon, healthy=healthy, velocity_en=(20.0, 0.0))
        return _east_of_origin(est, T0 + frame_ms * MS)

    assert prior(order) == pytest.approx(prior(list(range(len(GNSS_STREAM)))))


def test_one_sample_stamped_far_ahead_does_not_blind_the_buffers() -> None:
    """A bad stamp (an hour ahead) is one sample too many, not the end of every later one."""
    ahead = T0 + 3600 * 1000 * MS
    att = AttitudeBuffer(max_age_s=0.1, max_gap_s=0.25)
    h = HeightSource(ground_elevation_msl=HOME_MSL)
    att.add(ahead, LEVEL)
    h.add_altitude_msl(ahead, HOME_MSL + 900.0)
    for k in range(10):
        att.add(T0 + k * 40 * MS, LEVEL)
        h.add_altitude_msl(T0 + k * 40 * MS, HOME_MSL + 300.0)
    assert len(att) == 11  # none of the true samples was dropped as "too old"
    np.testing.assert_allclose(att.at(T0 + 200 * MS), LEVEL, atol=1e-9)
    assert h.at(T0 + 200 * MS, tilt_cos=1.0).height_m == pytest.approx(300.0)
