"""The feed-the-dog task in MuJoCo: physics, seeded episodes and a success test judged by physics.

``FeedDogSim(task, seed, episode)`` owns one ``MjModel``/``MjData``. Each episode puts the
arm in the ready pose with the hand open, the bowl and the dog where the task says, and
the treat at a place drawn from ``(seed, episode)`` inside the task's ``treat_region``.
Joint targets go to position actuators (``set_targets``); ``step(dt)`` advances the
physics; ``success()`` is true when the treat lies at rest inside the bowl.

Rendering lives in ``SceneRenderer``: a GL context belongs to the thread that made it,
so a renderer is made (and used) in the thread that renders, from a snapshot of the
state (``snapshot()``), never from the live ``MjData`` another thread steps.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import mjcf
from .kinematics import READY_POSE

__all__ = ["EpisodeLayout", "FeedDogSim", "SceneRenderer", "SUCCESS_MAX_SPEED", "VIEWS", "episode_layout"]

#: camera names in the model, in spec view order (0 wrist, 1 third person)
VIEWS: tuple[str, str] = ("wrist_camera", "third_person_camera")
#: the treat counts as at rest below this speed [m/s]
SUCCESS_MAX_SPEED = 0.05
READY_FINGER = 0.04
_DEFAULT_TASK = {"treat_region": {"x": [0.45, 0.62], "y": [-0.15, 0.12]},
                 "bowl": {"x": 0.42, "y": 0.3}, "treat_yaw": True}


@dataclass(frozen=True)
class EpisodeLayout:
    """Where things are in one episode [m, world frame]."""

    episode: int
    treat_xy: tuple[float, float]
    bowl_xy: tuple[float, float]
    treat_yaw: float


def _range(task: Mapping[str, Any], key: str, axis: str) -> tuple[float, float]:
    value = task[key][axis]
    if isinstance(value, (int, float)):
        return float(value), float(value)
    lo, hi = (float(v) for v in value)
    if hi < lo:
        raise ValueError(f"task {key}.{axis}: expected [low, high], found {value}")
    return lo, hi


def episode_layout(task: Mapping[str, Any] | None, seed: int, episode: int) -> EpisodeLayout:
    """The seeded layout of ``episode``: the same ``(task, seed, episode)`` always gives the same places."""
    t = {**_DEFAULT_TASK, **(task or {})}
    rng = np.random.default_rng([int(seed), int(episode), 4242])
    (x0, x1), (y0, y1) = _range(t, "treat_region", "x"), _range(t, "treat_region", "y")
    (bx0, bx1), (by0, by1) = _range(t, "bowl", "x"), _range(t, "bowl", "y")
    treat = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
    bowl = (float(rng.uniform(bx0, bx1)), float(rng.uniform(by0, by1)))
    yaw = float(rng.uniform(-math.pi, math.pi)) if t.get("treat_yaw", True) else 0.0
    return EpisodeLayout(int(episode), treat, bowl, yaw)


class FeedDogSim:
    """The scene's physics. Not thread-safe: guard it with the caller's lock."""

    def __init__(self, task: Mapping[str, Any] | None = None, seed: int = 0, episode: int = 0):
        import mujoco

        self._mj = mujoco
        self.task = dict(task or {})
        self.seed = int(seed)
        self.model = mjcf.build_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in mjcf.ARM_JOINTS])
        self._arm_dof = np.array([m.joint(n).dofadr[0] for n in mjcf.ARM_JOINTS])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in mjcf.FINGER_JOINTS])
        self._finger_dof = np.array([m.joint(n).dofadr[0] for n in mjcf.FINGER_JOINTS])
        self._treat_qpos = int(m.joint("treat_free").qposadr[0])
        self._treat_dof = int(m.joint("treat_free").dofadr[0])
        self._bowl_mocap = int(m.body("bowl").mocapid[0])
        self._dog_mocap = int(m.body("dog").mocapid[0])
        self._tcp_site = int(m.site("tcp").id)
        self._ctrl_lo = m.actuator_ctrlrange[:, 0].copy()
        self._ctrl_hi = m.actuator_ctrlrange[:, 1].copy()
        #: actuator index per commandable joint name (the finger actuator drives both fingers)
        self.actuator_of = {name: i for i, name in enumerate(mjcf.ARM_JOINTS)}
        self.actuator_of[mjcf.FINGER_JOINTS[0]] = len(mjcf.ARM_JOINTS)
        self.time_to_success: float | None = None
        self.reset(episode)

    # -- episodes ----------------------------------------------------------------------------------
    def reset(self, episode: int) -> EpisodeLayout:
        """Start ``episode``: ready pose, hand open, the episode's bowl and treat; the treat settles."""
        mj, m, d = self._mj, self.model, self.data
        self.layout = episode_layout(self.task, self.seed, episode)
        mj.mj_resetData(m, d)
        d.qpos[self._arm_qpos] = READY_POSE
        d.qpos[self._finger_qpos] = READY_FINGER
        bx, by = self.layout.bowl_xy
        d.mocap_pos[self._bowl_mocap] = [bx, by, 0.0]
        d.mocap_pos[self._dog_mocap] = [bx + 0.02, by + 0.2, 0.0]
        tx, ty = self.layout.treat_xy
        yaw = self.layout.treat_yaw
        d.qpos[self._treat_qpos:self._treat_qpos + 7] = [tx, ty, mjcf.TREAT_HALF_HEIGHT + 0.001,
                                                         math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        d.ctrl[:7] = READY_POSE
        d.ctrl[7] = READY_FINGER
        mj.mj_forward(m, d)
        self.time_to_success = None
        self._pending = 0.0
        self._start_time = float(d.time)
        self.step(0.1)
        self._start_time = float(d.time)
        self.time_to_success = None
        return self.layout

    @property
    def episode(self) -> int:
        return self.layout.episode

    # -- control -----------------------------------------------------------------------------------
    def set_targets(self, names: Sequence[str], values: ArrayLike) -> None:
        """Position targets for the named joints, clamped to the actuators' ranges.

        Raises ``KeyError`` naming a joint the robot cannot command.
        """
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        for name, value in zip(names, values):
            if name not in self.actuator_of:
                raise KeyError(f"joint {name!r} is not commandable (known: {sorted(self.actuator_of)})")
            i = self.actuator_of[name]
            self.data.ctrl[i] = min(max(float(value), self._ctrl_lo[i]), self._ctrl_hi[i])

    def step(self, dt: float) -> None:
        """Advance the physics by ``dt`` seconds; tracks the first moment of success.

        The physics moves in whole 2 ms steps; the remainder is carried to the next call,
        so any sequence of calls keeps the simulated time within one step of their sum.
        """
        timestep = float(self.model.opt.timestep)
        self._pending += max(float(dt), 0.0)
        n = int(self._pending / timestep + 1e-9)
        self._pending -= n * timestep
        for _ in range(n):
            self._mj.mj_step(self.model, self.data)
            if self.time_to_success is None and self.success():
                self.time_to_success = float(self.data.time) - self._start_time

    # -- state -------------------------------------------------------------------------------------
    def joint_positions(self) -> NDArray[np.float64]:
        """7 arm joints, then both fingers [rad, m]."""
        d = self.data
        return np.concatenate([d.qpos[self._arm_qpos], d.qpos[self._finger_qpos]])

    def joint_velocities(self) -> NDArray[np.float64]:
        d = self.data
        return np.concatenate([d.qvel[self._arm_dof], d.qvel[self._finger_dof]])

    @staticmethod
    def joint_names() -> tuple[str, ...]:
        return mjcf.ARM_JOINTS + mjcf.FINGER_JOINTS

    def treat_position(self) -> NDArray[np.float64]:
        return self.data.qpos[self._treat_qpos:self._treat_qpos + 3].copy()

    def treat_quaternion(self) -> NDArray[np.float64]:
        """The treat's orientation (w, x, y, z)."""
        return self.data.qpos[self._treat_qpos + 3:self._treat_qpos + 7].copy()

    def compose_qpos(self, qpos: NDArray[np.float64], joints: ArrayLike | None = None,
                     treat_pose: ArrayLike | None = None) -> NDArray[np.float64]:
        """``qpos`` with the arm + finger (8: 7 joints, finger) and/or the treat (x y z qw qx qy qz) replaced.

        What a camera that only sees joint states and the treat's pose renders from.
        """
        out = np.array(qpos, dtype=np.float64, copy=True)
        if joints is not None:
            q = np.asarray(joints, dtype=np.float64).reshape(8)
            out[self._arm_qpos] = q[:7]
            out[self._finger_qpos] = q[7]
        if treat_pose is not None:
            out[self._treat_qpos:self._treat_qpos + 7] = np.asarray(treat_pose, dtype=np.float64).reshape(7)
        return out

    def treat_speed(self) -> float:
        return float(np.linalg.norm(self.data.qvel[self._treat_dof:self._treat_dof + 3]))

    def tcp_position(self) -> NDArray[np.float64]:
        return self.data.site_xpos[self._tcp_site].copy()

    def bowl_position(self) -> NDArray[np.float64]:
        return self.data.mocap_pos[self._bowl_mocap].copy()

    def treat_in_bowl(self) -> bool:
        """The treat's centre lies inside the bowl's wall and below its rim."""
        return mjcf.inside_bowl(self.treat_position(), self.layout.bowl_xy)

    def success(self) -> bool:
        """The treat at rest inside the bowl."""
        return self.treat_in_bowl() and self.treat_speed() < SUCCESS_MAX_SPEED

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the episode started."""
        return float(self.data.time) - self._start_time

    def snapshot(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(qpos, mocap_pos) copies: everything a renderer needs."""
        return self.data.qpos.copy(), self.data.mocap_pos.copy()


class SceneRenderer:
    """Offscreen rendering of the scene's two cameras; make and use it in one thread.

    ``MUJOCO_GL`` defaults to ``egl`` (Mesa's software rasteriser when there is no GPU);
    set it to ``osmesa`` before the first import of ``mujoco`` to use OSMesa instead.
    """

    def __init__(self, model: Any, width: int, height: int):
        import mujoco

        self._mj = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        self.width, self.height = int(width), int(height)
        try:
            self._renderer = mujoco.Renderer(model, self.height, self.width)
        except Exception as exc:  # no usable GL: say what to install
            raise RuntimeError(
                f"MuJoCo could not open an offscreen GL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): {exc}. "
                "On Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 "
                "(or libosmesa6 with MUJOCO_GL=osmesa)") from exc
        self._camera_ids = [int(model.camera(name).id) for name in VIEWS]

    def render(self, qpos: ArrayLike, mocap_pos: ArrayLike | None = None) -> list[NDArray[np.uint8]]:
        """RGB uint8 images (height, width, 3) of every view, in ``VIEWS`` order."""
        d = self.data
        d.qpos[:] = qpos
        if mocap_pos is not None:
            d.mocap_pos[:] = mocap_pos
        self._mj.mj_kinematics(self.model, d)
        self._mj.mj_camlight(self.model, d)
        out = []
        for cam in self._camera_ids:
            self._renderer.update_scene(d, camera=cam)
            out.append(self._renderer.render().copy())
        return out

    def close(self) -> None:
        self._renderer.close()
