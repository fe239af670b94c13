"""The middleware-free runtime: observation cache, chunk execution, safety, the control loop.

Knows nothing of ROS: numpy arrays in (``ObservationCache.update``), command vectors out
(``PolicyRuntime.tick``), time as floats on a clock the caller passes in.

* ``observation`` - latest value per sensor with its receive time; ``Observation`` per tick.
* ``chunking``    - ACT temporal ensembling or re-planning: chunks -> one action per tick.
* ``safety``      - joint limits, step clamp, NaN rejection, enable gate, hold/resume events.
* ``workspace``   - the TCP's box and keep-out planes (``kinematics``: forward kinematics from DH rows).
* ``inference``   - inference jobs: inline, in a worker thread, or scheduled on a simulated clock; deadlines.
* ``controller``  - ``PolicyRuntime``: one control tick, shared by the live node and replay.
"""

from .chunking import Executor, ReplanExecutor, TemporalEnsembler, make_executor
from .controller import CLOCK_JUMP_REASON, DEADLINE_REASON, PolicyRuntime, RuntimeStats, TickResult
from .errors import (
    InvalidSensorError,
    MissingSensorError,
    NoActionError,
    ObservationError,
    RuntimeLayerError,
    SensorDataError,
    StaleSensorError,
)
from .inference import CLOCK_TOLERANCE_S, DeadlineMonitor, InferenceJob, ScheduledInference, ThreadedInference
from .observation import Observation, ObservationCache, resize_bilinear
from .safety import CartesianLimits, SafetyEvent, SafetyFilter, SafetyResult

__all__ = [
    "CLOCK_JUMP_REASON",
    "CLOCK_TOLERANCE_S",
    "DEADLINE_REASON",
    "CartesianLimits",
    "DeadlineMonitor",
    "Executor",
    "InferenceJob",
    "InvalidSensorError",
    "MissingSensorError",
    "NoActionError",
    "Observation",
    "ObservationCache",
    "ObservationError",
    "PolicyRuntime",
    "ReplanExecutor",
    "RuntimeLayerError",
    "RuntimeStats",
    "SafetyEvent",
    "SafetyFilter",
    "SafetyResult",
    "ScheduledInference",
    "SensorDataError",
    "StaleSensorError",
    "TemporalEnsembler",
    "ThreadedInference",
    "TickResult",
    "make_executor",
    "resize_bilinear",
]
