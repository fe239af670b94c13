"""The MuJoCo model of the feed-the-dog scene, built with ``mujoco.MjSpec``.

A Franka arm (the Panda meshes and inertias of ``dm-robotics-panda``, Apache-2.0, its
NOTICE kept in the installed package; joints renamed and limited as the FR3:
``fr3_joint1..7``, ``fr3_finger_joint1/2``) stands at the world origin on a table whose
top is the plane z = 0. The Franka Hand is attached at ``panda_link8`` turned -45 deg
about z (as on the real flange), so the TCP frame equals ``kinematics.tcp_pose``.

Added here, since the asset files have none: position actuators (kp 600 on joints
1-4, 150 on 5-7, critically damped with armature), one finger actuator whose control
is the finger position in metres (0..0.04, both fingers coupled), a dog bowl (a floor
and a ring of wall boxes, so a treat can fall in), a treat (a free cube), a dog
made of primitives (visual only), a wrist camera on the hand looking along the tool
axis and a fixed third-person camera. Joint 6's negative damping in the asset is set
to zero (it makes the joint drift). Fast rendering: no anti-aliasing, no shadows.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

# MuJoCo picks its GL backend when first imported: headless EGL (Mesa's software
# rasteriser without a GPU) unless the user chose one; one llvmpipe thread leaves a core free
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")

__all__ = [
    "ARM_JOINTS",
    "BOWL_HEIGHT",
    "BOWL_INNER_RADIUS",
    "FINGER_JOINTS",
    "FR3_RANGES",
    "TREAT_HALF_HEIGHT",
    "TREAT_HALF_SIZE",
    "assets_dir",
    "build_model",
    "inside_bowl",
]

ARM_JOINTS: tuple[str, ...] = tuple(f"fr3_joint{i}" for i in range(1, 8))
FINGER_JOINTS: tuple[str, str] = ("fr3_finger_joint1", "fr3_finger_joint2")
#: FR3 datasheet joint ranges [rad] (the Panda's differ slightly; the spec is the FR3's)
FR3_RANGES: tuple[tuple[float, float], ...] = (
    (-2.7437, 2.7437), (-1.7837, 1.7837), (-2.9007, 2.9007), (-3.0421, -0.1518),
    (-2.8065, 2.8065), (0.5445, 4.5169), (-3.0159, 3.0159),
)
_KP = (600.0, 600.0, 600.0, 600.0, 150.0, 150.0, 150.0)
_ARMATURE = 0.1
_FINGER_KP = 400.0

BOWL_INNER_RADIUS = 0.07
BOWL_WALL = 0.008
BOWL_HEIGHT = 0.05
_BOWL_SEGMENTS = 20
TREAT_HALF_SIZE = 0.015
TREAT_HALF_HEIGHT = TREAT_HALF_SIZE
TREAT_MASS = 0.012

#: third-person camera: in front of the robot, to its right, looking at the work area
THIRD_PERSON_EYE = (1.3, -0.75, 0.95)
THIRD_PERSON_TARGET = (0.38, 0.05, 0.15)
THIRD_PERSON_FOVY = 55.0
#: wrist camera in the hand frame: beside the fingers, looking along the tool axis
WRIST_CAMERA_POS = (0.07, 0.0, 0.0)
WRIST_FOVY = 75.0

_TABLE_RGBA = (0.80, 0.72, 0.58, 1.0)
_TREAT_RGBA = (0.95, 0.55, 0.05, 1.0)
_BOWL_RGBA = (0.15, 0.35, 0.85, 1.0)
_DOG_RGBA = (0.55, 0.36, 0.20, 1.0)
_DOG_DARK = (0.25, 0.16, 0.09, 1.0)


def inside_bowl(point, bowl_xy) -> bool:
    """``point`` (x, y, z) lies inside the bowl's wall and below its rim (the bowl at ``bowl_xy``)."""
    inside = math.hypot(point[0] - bowl_xy[0], point[1] - bowl_xy[1]) < BOWL_INNER_RADIUS
    return bool(inside and point[2] < BOWL_HEIGHT)


def assets_dir() -> Path:
    """The folder holding ``panda.xml``, ``panda_hand.xml`` and the meshes of ``dm-robotics-panda``.

    Found through the installed distribution's files, without importing its Python
    modules (they pull heavy dependencies the package does not need).
    """
    try:
        dist = metadata.distribution("dm-robotics-panda")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the Franka meshes come from the dm-robotics-panda package, which is not installed: "
            "pip install --no-deps dm-robotics-panda==0.4.8 (scripts/install.sh does this)") from None
    folder = Path(str(dist.locate_file("dm_robotics/panda/assets/panda")))
    if not (folder / "panda.xml").is_file():
        raise FileNotFoundError(f"dm-robotics-panda is installed but {folder / 'panda.xml'} is missing")
    return folder


def _quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


def _look_at_xyaxes(eye, target) -> list[float]:
    """MuJoCo camera ``xyaxes`` for a camera at ``eye`` looking at ``target`` with z up."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return [*right.tolist(), *up.tolist()]


def _add_box(body, name, pos, size, rgba, *, collide=True, **kw):
    import mujoco

    g = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(pos), size=list(size), rgba=list(rgba), **kw)
    if not collide:
        g.contype = g.conaffinity = 0
    return g


def _arm_spec(folder: Path):
    """The Panda arm with the hand attached, as the scene's top-level spec."""
    import mujoco

    arm = mujoco.MjSpec.from_file(str(folder / "panda.xml"))
    hand = mujoco.MjSpec.from_file(str(folder / "panda_hand.xml"))
    for spec in (arm, hand):
        spec.meshdir = str(folder)
        spec.texturedir = str(folder)
    # its coupling, tendon and actuator are redefined below on the renamed joints
    for element in [*hand.actuators, *hand.tendons, *hand.equalities]:
        hand.delete(element)
    link8 = arm.body("panda_link8")
    frame = link8.add_frame(quat=_quat_z(-math.pi / 4))
    frame.attach_body(hand.body("panda_hand"), "hand_", "")
    for i, (lo, hi) in enumerate(FR3_RANGES, start=1):
        j = arm.joint(f"panda_joint{i}")
        j.name = f"fr3_joint{i}"
        j.range = [lo, hi]
        j.armature = _ARMATURE
        j.damping = np.maximum(np.asarray(j.damping, float), 0.0) + 1.0
        # the asset's Coulomb friction (up to 1.2 N m) would leave the wrist 8 mrad off its target
        j.frictionloss = np.asarray(j.frictionloss, float) * 0.1
    for k, name in enumerate(FINGER_JOINTS, start=1):
        arm.joint(f"hand_panda_finger_joint{k}").name = name
    # the coupling and the mean-position tendon of panda_hand.xml, on the renamed joints
    arm.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=FINGER_JOINTS[0], name2=FINGER_JOINTS[1],
                     solimp=[0.95, 0.99, 0.001, 0.5, 2], solref=[0.005, 1])
    tendon = arm.add_tendon(name="finger_split")
    for name in FINGER_JOINTS:
        tendon.wrap_joint(name, 0.5)
    return arm


def _light_render_meshes(spec, folder: Path) -> None:
    """Show decimated copies of the arm and hand meshes; the originals stay for collisions, hidden (group 3)."""
    import mujoco

    from .meshes import PALETTE, decimated_parts

    for colour, rgb in PALETTE.items():
        spec.add_material(name=f"render_{colour}", rgba=[*rgb, 1.0], specular=0.3, shininess=0.4)
    for geom in list(spec.geoms):
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        mesh = spec.mesh(geom.meshname)
        texture = folder / "panda.png" if geom.material.endswith("panda") else None
        parts = decimated_parts(str(folder / Path(mesh.file).name), str(texture) if texture else None)
        body = geom.parent
        for colour, verts, faces in parts:
            name = f"{geom.meshname}_render_{colour}"
            if spec.mesh(name) is None:
                spec.add_mesh(name=name, uservert=verts.reshape(-1).tolist(), userface=faces.reshape(-1).tolist(),
                              inertia=mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL)
            g = body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=name, pos=list(geom.pos),
                              quat=list(geom.quat),
                              material=f"render_{colour}" if texture else geom.material, group=0)
            g.contype = g.conaffinity = 0
            g.mass = 0.0
        geom.group = 3


@lru_cache(maxsize=4)
def _compiled_xml() -> str:
    return _build_spec().to_xml()


def _build_spec():
    import mujoco

    folder = assets_dir()
    spec = _arm_spec(folder)
    spec.modelname = "feed_dog"
    spec.meshdir = str(folder)
    spec.texturedir = str(folder)
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.noslip_iterations = 3
    spec.visual.quality.offsamples = 0
    spec.visual.quality.shadowsize = 0
    spec.visual.headlight.ambient = [0.45, 0.45, 0.45]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960

    world = spec.worldbody
    world.add_light(pos=[0.4, 0.0, 2.0], dir=[0, 0, -1], diffuse=[0.5, 0.5, 0.5], castshadow=False)
    floor = world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, pos=[0, 0, -0.75], size=[3, 3, 0.1],
                           rgba=[0.35, 0.33, 0.31, 1])
    table = _add_box(world, "table", (0.4, 0.0, -0.02), (0.75, 0.8, 0.02), _TABLE_RGBA, friction=[1.0, 0.01, 0.001])
    table.priority = 1
    # a few fixed marks on the table, so the views show how the arm moves relative to it
    for k, (x, y, rgba) in enumerate(((0.85, -0.45, (0.2, 0.3, 0.8, 1)), (0.85, 0.45, (0.2, 0.6, 0.25, 1)),
                                      (0.2, -0.5, (0.55, 0.25, 0.65, 1)), (1.0, 0.0, (0.1, 0.1, 0.1, 1)))):
        _add_box(world, f"mark{k}", (x, y, 0.0005), (0.03, 0.03, 0.0005), rgba, collide=False)

    for i, name in enumerate(ARM_JOINTS):
        kp = _KP[i]
        kv = 2.0 * math.sqrt(kp * _ARMATURE)
        spec.add_actuator(name=f"{name}_position", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE,
                          gainprm=[kp] + [0] * 9, biasprm=[0, -kp, -kv] + [0] * 7,
                          ctrlrange=list(FR3_RANGES[i]), ctrllimited=True, forcerange=[-87, 87] if i < 4 else [-12, 12],
                          forcelimited=True)
    # fingers: the tendon 'split' is the mean finger position; control = that position [m]
    kv = 2.0 * math.sqrt(_FINGER_KP * 0.1)
    spec.add_actuator(name="fr3_finger_position", target="finger_split", trntype=mujoco.mjtTrn.mjTRN_TENDON,
                      gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE,
                      gainprm=[_FINGER_KP] + [0] * 9, biasprm=[0, -_FINGER_KP, -kv] + [0] * 7,
                      ctrlrange=[0.0, 0.04], ctrllimited=True, forcerange=[-20, 20], forcelimited=True)
    for side in ("left", "right"):
        g = spec.geom(f"hand_panda_{side}finger_collision")
        g.friction = [1.5, 0.02, 0.001]
        g.condim = 4
        g.priority = 2

    _light_render_meshes(spec, folder)
    hand = spec.body("hand_panda_hand")
    hand.add_camera(name="wrist_camera", pos=list(WRIST_CAMERA_POS), quat=[0.0, 1.0, 0.0, 0.0], fovy=WRIST_FOVY)
    hand.add_site(name="tcp", pos=[0, 0, 0.1034], size=[0.005, 0.005, 0.005], rgba=[1, 0, 0, 0])
    world.add_camera(name="third_person_camera", pos=list(THIRD_PERSON_EYE),
                     xyaxes=_look_at_xyaxes(THIRD_PERSON_EYE, THIRD_PERSON_TARGET), fovy=THIRD_PERSON_FOVY)

    # the bowl: a mocap body (moved per episode), floor + a ring of wall boxes
    bowl = world.add_body(name="bowl", mocap=True, pos=[0.45, 0.3, 0.0])
    bowl.add_geom(name="bowl_floor", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, 0.004],
                  size=[BOWL_INNER_RADIUS + BOWL_WALL, 0.004, 0], rgba=list(_BOWL_RGBA))
    ring = BOWL_INNER_RADIUS + BOWL_WALL / 2
    seg = 2 * math.pi * ring / _BOWL_SEGMENTS / 2 * 1.05
    for k in range(_BOWL_SEGMENTS):
        a = 2 * math.pi * k / _BOWL_SEGMENTS
        bowl.add_geom(name=f"bowl_wall{k}", type=mujoco.mjtGeom.mjGEOM_BOX,
                      pos=[ring * math.cos(a), ring * math.sin(a), BOWL_HEIGHT / 2],
                      quat=_quat_z(a), size=[BOWL_WALL / 2, seg, BOWL_HEIGHT / 2], rgba=list(_BOWL_RGBA))

    # the dog, sitting behind the bowl (visual only)
    dog = world.add_body(name="dog", mocap=True, pos=[0.45, 0.5, 0.0])
    parts = (
        ("dog_body", mujoco.mjtGeom.mjGEOM_CAPSULE, [0, 0.06, 0.12], [0.06, 0.09, 0], [1, 0.25, 0, 0], _DOG_RGBA),
        ("dog_head", mujoco.mjtGeom.mjGEOM_SPHERE, [0, -0.02, 0.28], [0.065, 0, 0], [1, 0, 0, 0], _DOG_RGBA),
        ("dog_snout", mujoco.mjtGeom.mjGEOM_CAPSULE, [0, -0.08, 0.26], [0.03, 0.03, 0], [1, 1, 0, 0], _DOG_RGBA),
        ("dog_nose", mujoco.mjtGeom.mjGEOM_SPHERE, [0, -0.12, 0.265], [0.015, 0, 0], [1, 0, 0, 0], _DOG_DARK),
        ("dog_ear_l", mujoco.mjtGeom.mjGEOM_ELLIPSOID, [0.055, 0.0, 0.3], [0.015, 0.03, 0.05], [1, 0, 0.3, 0],
         _DOG_DARK),
        ("dog_ear_r", mujoco.mjtGeom.mjGEOM_ELLIPSOID, [-0.055, 0.0, 0.3], [0.015, 0.03, 0.05], [1, 0, -0.3, 0],
         _DOG_DARK),
        ("dog_leg_l", mujoco.mjtGeom.mjGEOM_CAPSULE, [0.035, -0.02, 0.06], [0.02, 0.06, 0], [1, 0, 0, 0], _DOG_RGBA),
        ("dog_leg_r", mujoco.mjtGeom.mjGEOM_CAPSULE, [-0.035, -0.02, 0.06], [0.02, 0.06, 0], [1, 0, 0, 0],
         _DOG_RGBA),
    )
    for name, kind, pos, size, quat, rgba in parts:
        q = np.asarray(quat, float)
        q = (q / np.linalg.norm(q)).tolist()
        g = dog.add_geom(name=name, type=kind, pos=pos, size=size, quat=q, rgba=list(rgba))
        g.contype = g.conaffinity = 0

    # the treat: a free cube (a cylinder would roll once dropped)
    treat = world.add_body(name="treat", pos=[0.5, 0.0, TREAT_HALF_HEIGHT])
    treat.add_freejoint(name="treat_free")
    treat.add_geom(name="treat", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TREAT_HALF_SIZE] * 3,
                   rgba=list(_TREAT_RGBA), mass=TREAT_MASS, friction=[1.2, 0.02, 0.002], condim=6)
    return spec


def build_model():
    """A fresh ``mujoco.MjModel`` of the scene (the XML is built once per process and reused)."""
    import mujoco

    return mujoco.MjModel.from_xml_string(_compiled_xml())
