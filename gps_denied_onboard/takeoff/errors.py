"""Take-off errors.

::

    TakeoffError
    ├── StepFailed            a transition or call returned failure
    │   └── FdrOpenFailure    the recorder could not open: exit code 2, FATAL line
    └── StepTimeout           a lifecycle/service call did not answer in time
"""

from __future__ import annotations

from gps_denied_onboard.errors import GpsDeniedError


class TakeoffError(GpsDeniedError):
    """A take-off or landing step did not complete.

    Attributes:
        step: the step's name, e.g. ``"fc_bridge.activate"``.
    """

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class StepFailed(TakeoffError):
    """The node refused the transition or the call reported failure."""


class StepTimeout(TakeoffError):
    """The node did not answer within the configured service timeout."""


class FdrOpenFailure(StepFailed):
    """The flight data recorder could not be opened (FdrOpenError on its side).

    The aircraft must never get an FC link that the recorder is not recording,
    so this aborts take-off with ``EXIT_FDR_OPEN_FAILURE``.
    """
