"""The latest value of every sensor, and the observation the policy sees at a control tick.

``ObservationCache`` keeps, per sensor of the robot spec, only the newest array and the
time it was received: never a queue, old frames are simply replaced. Message callbacks
(on their own threads) call ``update``; the control timer calls ``build(now)``.

Rules (all times are seconds on the clock the caller passes in, so bag time works):

* **Age** of a sensor at ``now`` is ``now - receive_time``, reported as is: it can be
  slightly negative when a message arrived between the timer reading the clock and
  ``build``.
* **Stale** means ``age > max_age``: the boundary is *inclusive*, a message exactly
  ``max_age`` old is still fresh. A message more than ``max_age`` in the future
  (``age < -max_age``: the clock jumped back, e.g. a bag restarted) is stale too; call
  ``clear()`` on a clock jump.
* A **required** sensor that is stale raises ``StaleSensorError``, one never received
  raises ``MissingSensorError``; joint values that are NaN/inf raise ``InvalidSensorError``
  (a message layer can fill joints a JointState lacked with NaN and get a clear hold).
  Sensors are checked in spec order, so the first problem is the one reported.
* An **optional** sensor (``required: false``) is used whatever its age; one never
  received is filled with zeros (a black frame, zero joints) and listed in
  ``Observation.filled``.
* **Images** are uint8 RGB [H, W, 3]. Views of one size are stacked as they are (the
  engine resizes to the encoder's size itself). Views of different sizes cannot share
  one [V, H, W, 3] array, so then *every* view is resized here to the encoder's square
  size (``spec.image_size``) with the same bilinear filter the engine would apply
  (``align_corners=False``, no antialias): the model sees what it would have seen per
  view, interpolated once, at the cost of ~1 ms per view; a note is logged once.

Thread safety: one lock guards the dict of latest values. ``update`` validates and
converts outside it and only stores a reference inside; ``build`` copies the dict of
references inside it and stacks outside. The cache keeps a reference to each image
array: the caller must hand over a fresh array per message and never write to it again.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hpt_ros.spec.schema import RobotSpec, SensorSpec

from .errors import InvalidSensorError, MissingSensorError, SensorDataError, StaleSensorError

__all__ = ["Observation", "ObservationCache", "resize_bilinear"]

logger = logging.getLogger("hpt_ros.runtime")


@dataclass(frozen=True, eq=False)
class Observation:
    """What the policy sees at one control tick.

    Attributes:
        images: uint8 [V, H, W, 3] RGB, views in the spec's view order.
        state: float32 [S], joints in ``spec.state_joints`` order.
        stamp: the tick time ``now`` the observation was built for [s].
        ages: sensor name -> age at ``stamp`` [s] (``inf`` if never received).
        filled: optional sensors never received, filled with zeros.
    """

    images: np.ndarray
    state: np.ndarray
    stamp: float
    ages: dict[str, float] = field(default_factory=dict)
    filled: tuple[str, ...] = ()


@lru_cache(maxsize=64)
def _axis_table(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of torch's bilinear resize (align_corners=False) on one axis.

    Computed in float32 like torch's CPU kernel, so the weights agree to the last bit.
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    src = scale * (np.arange(out_size, dtype=f32) + f32(0.5)) - f32(0.5)
    src = np.maximum(src, f32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    weight = np.clip(src - i0.astype(f32), f32(0.0), f32(1.0)).astype(f32)
    return i0, i1, weight


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [height, width, C]; torch ``interpolate(bilinear, align_corners=False,
    antialias=False)`` up to rounding to uint8. Returns ``image`` itself if the size already fits."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    y0, y1, wy = _axis_table(image.shape[0], height)
    x0, x1, wx = _axis_table(image.shape[1], width)
    top = image[y0].astype(np.float32)
    rows = top + (image[y1].astype(np.float32) - top) * wy[:, None, None]
    left = rows[:, x0]
    out = left + (rows[:, x1] - left) * wx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class ObservationCache:
    """Latest array per sensor of ``spec`` with its receive time; builds ``Observation``s."""

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self._sensors: dict[str, SensorSpec] = {s.name: s for s in spec.sensors}
        self._image_sensors = spec.image_sensors
        self._state_sensors = spec.state_sensors
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[np.ndarray, float]] = {}
        self._noted_sizes: set[tuple[tuple[int, int], ...]] = set()

    # -- message side (callback threads) -------------------------------------
    def update(self, sensor: str, array: np.ndarray, receive_time: float) -> None:
        """Store ``array`` as the latest value of ``sensor`` (replacing the previous one).

        Images: uint8 [H, W, 3] RGB, stored by reference. Joint sensors: one value per
        joint in the sensor's ``joints`` order (NaN allowed, it makes the sensor invalid),
        stored as float32. Raises ``SensorDataError`` for an unknown sensor or a wrong
        shape/dtype; the previous value is then kept.
        """
        spec = self._sensors.get(sensor)
        if spec is None:
            raise SensorDataError(f"unknown sensor {sensor!r}; the spec has {', '.join(self._sensors)}")
        if spec.is_image:
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                found = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
                raise SensorDataError(
                    f"sensor {sensor!r} ({spec.topic}): expected a uint8 [H, W, 3] RGB image, found {found}"
                )
            value = array
        else:
            value = np.asarray(array, dtype=np.float32)
            if value.shape != (len(spec.joints),):
                raise SensorDataError(
                    f"sensor {sensor!r} ({spec.topic}): expected {len(spec.joints)} values "
                    f"({', '.join(spec.joints)}), found shape {value.shape}"
                )
        t = float(receive_time)
        with self._lock:
            self._latest[sensor] = (value, t)

    def clear(self) -> None:
        """Forget every value (call when the clock jumps back, e.g. a bag restarts)."""
        with self._lock:
            self._latest.clear()

    # -- control side ----------------------------------------------------------
    def latest(self, sensor: str) -> tuple[np.ndarray, float] | None:
        """(array, receive time) of ``sensor``, or None if never received."""
        with self._lock:
            return self._latest.get(sensor)

    def ages(self, now: float) -> dict[str, float]:
        """Sensor name -> age at ``now`` [s] (``inf`` if never received), for diagnostics."""
        with self._lock:
            latest = dict(self._latest)
        return {name: _age(now, latest[name][1]) if name in latest else math.inf for name in self._sensors}

    def build(self, now: float) -> Observation:
        """The observation at ``now``, or raise an ``ObservationError`` naming the first bad sensor."""
        with self._lock:
            latest = dict(self._latest)
        ages: dict[str, float] = {}
        filled: list[str] = []
        for s in self.spec.sensors:
            entry = latest.get(s.name)
            if entry is None:
                ages[s.name] = math.inf
                if s.required:
                    raise MissingSensorError(s.name, s.topic)
                filled.append(s.name)
                continue
            age = _age(now, entry[1])
            ages[s.name] = age
            if s.required and abs(age) > s.max_age:
                raise StaleSensorError(s.name, s.topic, age, s.max_age)

        state_parts = []
        for s in self._state_sensors:
            if s.name in latest:
                values = latest[s.name][0]
                bad = ~np.isfinite(values)
                if bad.any():
                    names = ", ".join(j for j, b in zip(s.joints, bad) if b)
                    raise InvalidSensorError(s.name, s.topic, f"non-finite {s.field} for {names}")
                state_parts.append(values)
            else:
                state_parts.append(np.zeros(len(s.joints), dtype=np.float32))
        state = np.concatenate(state_parts) if state_parts else np.zeros(0, dtype=np.float32)

        return Observation(self._stack_images(latest), state, float(now), ages, tuple(filled))

    def _stack_images(self, latest: dict[str, tuple[np.ndarray, float]]) -> np.ndarray:
        present = [latest[s.name][0] for s in self._image_sensors if s.name in latest]
        size = self.spec.image_size
        shape = present[0].shape if present else (size, size, 3)
        views = [latest[s.name][0] if s.name in latest else np.zeros(shape, np.uint8) for s in self._image_sensors]
        sizes = tuple((int(v.shape[0]), int(v.shape[1])) for v in views)
        if len(set(sizes)) > 1:
            if sizes not in self._noted_sizes:
                self._noted_sizes.add(sizes)
                listing = ", ".join(f"{s.name} {h}x{w}" for s, (h, w) in zip(self._image_sensors, sizes))
                logger.warning(
                    "camera views differ in size (%s): each view is resized here to %dx%d (bilinear, as the "
                    "engine would) so they fit one batch; give the cameras one size to skip this step",
                    listing, size, size,
                )  # fmt: skip
            views = [resize_bilinear(v, size, size) for v in views]
        return np.stack(views)


def _age(now: float, receive_time: float) -> float:
    return float(now) - receive_time
