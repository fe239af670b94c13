"""The feed-the-dog scene of the fake FR3: a table, a dog bowl, a treat, and two rendered cameras.

World frame = the robot's base frame: x forward, z up, the table top (and the floor
around it) is the plane z = 0 with the robot standing at the origin. Per episode the
bowl (the target) and the treat lie at places drawn deterministically from
``(seed, episode)``; everything else is fixed, including the table's checkerboard and
its coloured landmarks, so a policy can see how the arm moves relative to the table.

``render(q, finger)`` gives two RGB uint8 images:

- **wrist**: a pinhole camera on the hand (``WRIST_CAMERA_OFFSET`` in the TCP frame:
  0.10 m behind the TCP, 0.05 m off the tool axis) looking along the tool z axis; image
  up is the tool x axis (forward at the ready pose). It sees the table texture
  (warped through the plane homography), the bowl and the treat in 3-D, and the two
  finger tips at the bottom edge, their gap showing the gripper opening.
- **third person**: a fixed camera at ``THIRD_PERSON_EYE`` looking at
  ``THIRD_PERSON_TARGET``: the table, bowl and treat (pre-rendered once per image size)
  and the arm as thick coloured segments through the FK joint origins, plus the hand
  and fingers, painted far to near.

Rendering is deterministic (same inputs, same bytes) and costs about 1-2 ms for both
640x480 views on one core (see ``test/test_sim_scene.py``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from .camera import Camera, clip_polygon_near, clip_segment_near, half_plane_polygon
from .kinematics import FLANGE_INDEX, TCP_INDEX, forward_kinematics

__all__ = [
    "BOWL_HEIGHT",
    "BOWL_RADIUS",
    "FeedDogScene",
    "REACH_BOX",
    "SUCCESS_MAX_ABOVE_RIM",
    "SUCCESS_RADIUS",
    "THIRD_PERSON_EYE",
    "THIRD_PERSON_HFOV_DEG",
    "THIRD_PERSON_TARGET",
    "TREAT_RADIUS",
    "WRIST_CAMERA_OFFSET",
    "WRIST_HFOV_DEG",
]

# -- geometry [m] ---------------------------------------------------------------
TABLE_X = (-0.35, 1.15)
TABLE_Y = (-0.75, 0.75)
TEXTURE_RESOLUTION = 0.002  # metres per texture pixel
CHECKER = 0.1  # checkerboard square
#: where the bowl may be by default: reachable with the tool pointing down
REACH_BOX: dict[str, tuple[float, float]] = {"x": (0.35, 0.65), "y": (-0.3, 0.3)}
BOWL_RADIUS = 0.075  # rim
BOWL_BASE_RADIUS = 0.055
BOWL_HEIGHT = 0.045
TREAT_RADIUS = 0.02
TREAT_HEIGHT = 0.015
TREAT_MIN_DISTANCE = 0.2  # from the bowl centre
#: success: TCP within SUCCESS_RADIUS of the bowl's vertical axis and 0 < height above the rim <= SUCCESS_MAX_ABOVE_RIM
SUCCESS_RADIUS = 0.05
SUCCESS_MAX_ABOVE_RIM = 0.05

# -- cameras --------------------------------------------------------------------------
#: in front of the robot and to its right, so the arm is seen from the side, not end-on
THIRD_PERSON_EYE = (1.5, -0.6, 1.0)
THIRD_PERSON_TARGET = (0.3, 0.0, 0.2)
THIRD_PERSON_HFOV_DEG = 65.0
WRIST_HFOV_DEG = 70.0
#: wrist camera position in the TCP frame (x, y, z) [m]
WRIST_CAMERA_OFFSET = (0.05, 0.0, -0.10)
#: wrist camera axes in the TCP frame: image right = tool y, image down = tool -x, optical axis = tool z
_WRIST_ROTATION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
_REFERENCE_SIZE = (640, 480)  # the image size normalised target_region coordinates refer to

# -- colours (RGB) ----------------------------------------------------------------------
_WALL = (196, 206, 220)
_FLOOR = (92, 88, 84)
_UNDER = (40, 36, 32)
_CHECKER_A = (214, 186, 146)
_CHECKER_B = (192, 160, 118)
_TABLE_EDGE = (120, 90, 60)
_ROBOT_PLATE = (70, 70, 76)
_BOWL_OUT = (205, 35, 35)
_BOWL_IN = (150, 22, 22)
_BOWL_FLOOR = (110, 60, 30)  # kibble
_BOWL_RIM = (240, 110, 110)
_TREAT_TOP = (150, 95, 40)
_TREAT_SIDE = (115, 70, 30)
_SHADOW = (150, 128, 100)
_LINK_COLOURS = (
    (235, 235, 240),  # base column
    (255, 170, 40),  # shoulder -> elbow
    (240, 240, 245),
    (60, 140, 255),  # elbow -> wrist
    (240, 240, 245),
    (60, 200, 90),  # wrist -> flange
)
_OUTLINE = (30, 30, 35)
_JOINT_CAP = (45, 45, 50)
_HAND = (245, 245, 245)
_FINGER = (55, 55, 60)
_FINGER_FACE = (95, 95, 100)
#: landmarks on the table: (shape, x, y, size, colour)
_LANDMARKS = (
    ("square", 0.85, -0.45, 0.06, (40, 80, 200)),
    ("triangle", 0.85, 0.45, 0.07, (40, 160, 60)),
    ("circle", 0.25, 0.5, 0.04, (230, 200, 30)),
    ("cross", 0.25, -0.5, 0.05, (140, 60, 170)),
    ("circle", 1.0, 0.0, 0.035, (20, 20, 20)),
    ("square", 0.55, 0.62, 0.035, (230, 120, 30)),
    ("triangle", 0.55, -0.62, 0.04, (30, 170, 190)),
)

_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT
_RING = 24  # polygon segments per circle


def _fixed(uv: NDArray[np.float64]) -> NDArray[np.int32]:
    return np.round(uv * _ONE).astype(np.int32)


class FeedDogScene:
    """Table, bowl and treat for one episode; renders the wrist and third-person views.

    ``target_region`` says where the bowl may be: ``{"x": [lo, hi], "y": [lo, hi]}`` on
    the table in metres (default ``REACH_BOX``), or ``{"u": [lo, hi], "v": [lo, hi]}`` in
    the third-person camera's normalised image coordinates (as in
    ``config/tasks/feed_dog.yaml``), sampled there, cast onto the table and kept only
    where it falls in ``REACH_BOX`` (a point is redrawn up to 100 times, then clamped).
    """

    def __init__(self, seed: int = 0, episode: int = 0, target_region: Mapping[str, Any] | None = None) -> None:
        if seed < 0 or episode < 0:
            raise ValueError(f"seed and episode must be >= 0, got {seed}, {episode}")
        self.seed = int(seed)
        self.episode = int(episode)
        self.third_person_camera = Camera.looking_at(THIRD_PERSON_EYE, THIRD_PERSON_TARGET, THIRD_PERSON_HFOV_DEG)
        rng = np.random.default_rng([self.seed, self.episode])
        bowl_xy = self._sample_bowl(rng, target_region)
        self._bowl = np.array([bowl_xy[0], bowl_xy[1], 0.0])
        self._treat = np.array([*self._sample_treat(rng, bowl_xy), 0.0])
        self._texture, self._texture_to_table = self._build_texture()
        self._backgrounds: dict[tuple[int, int], NDArray[np.uint8]] = {}

    @classmethod
    def from_task(cls, task: Mapping[str, Any], seed: int = 0, episode: int = 0) -> "FeedDogScene":
        """A scene from a task mapping (``config/tasks/feed_dog.yaml`` loaded): uses its ``target_region``."""
        return cls(seed, episode, target_region=task.get("target_region"))

    # -- episode layout ------------------------------------------------------------
    def _sample_bowl(self, rng: np.random.Generator, region: Mapping[str, Any] | None) -> NDArray[np.float64]:
        box = REACH_BOX
        if region is None:
            region = box
        keys = set(region)
        if {"x", "y"} <= keys:
            (x0, x1), (y0, y1) = region["x"], region["y"]
            return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if {"u", "v"} <= keys:
            (u0, u1), (v0, v1) = region["u"], region["v"]
            w, h = _REFERENCE_SIZE
            hinv = np.linalg.inv(self.third_person_camera.plane_homography(self.third_person_camera.intrinsics(w, h)))
            xy = np.zeros(2)
            for _ in range(100):
                u, v = rng.uniform(u0, u1) * w, rng.uniform(v0, v1) * h
                p = hinv @ np.array([u, v, 1.0])
                xy = p[:2] / p[2] if p[2] > 0 else np.array([np.inf, np.inf])
                if box["x"][0] <= xy[0] <= box["x"][1] and box["y"][0] <= xy[1] <= box["y"][1]:
                    return xy
            return np.array([np.clip(xy[0], *box["x"]), np.clip(xy[1], *box["y"])])
        raise ValueError(f"target_region needs keys x and y (metres) or u and v (image), got {sorted(keys)}")

    @staticmethod
    def _sample_treat(rng: np.random.Generator, bowl_xy: NDArray[np.float64]) -> NDArray[np.float64]:
        (x0, x1), (y0, y1) = (0.3, 0.7), (-0.35, 0.35)
        xy = np.array([x0, y0])
        for _ in range(100):
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if np.linalg.norm(xy - bowl_xy) >= TREAT_MIN_DISTANCE:
                break
        return xy

    @property
    def target_position(self) -> NDArray[np.float64]:
        """The bowl: centre of its base on the table (x, y, 0) [m]."""
        return self._bowl.copy()

    @property
    def treat_position(self) -> NDArray[np.float64]:
        """The treat: centre of its base on the table (x, y, 0) [m]."""
        return self._treat.copy()

    def success(self, q: ArrayLike, radius: float = SUCCESS_RADIUS, max_above_rim: float = SUCCESS_MAX_ABOVE_RIM) -> bool:
        """TCP just over the bowl: within ``radius`` of its axis, above its rim by at most ``max_above_rim``."""
        tcp = forward_kinematics(q)[TCP_INDEX][:3, 3]
        horizontal = math.hypot(tcp[0] - self._bowl[0], tcp[1] - self._bowl[1])
        above_rim = tcp[2] - self._bowl[2] - BOWL_HEIGHT
        return bool(horizontal <= radius and 0.0 < above_rim <= max_above_rim)

    # -- cameras -------------------------------------------------------------------
    @staticmethod
    def wrist_camera(q: ArrayLike) -> Camera:
        """The hand camera's pose for arm joints ``q``."""
        tcp = forward_kinematics(q)[TCP_INDEX]
        position = tcp[:3, :3] @ np.asarray(WRIST_CAMERA_OFFSET) + tcp[:3, 3]
        return Camera(tcp[:3, :3] @ _WRIST_ROTATION, position, WRIST_HFOV_DEG)

    # -- table texture ---------------------------------------------------------------
    def _build_texture(self) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
        s = TEXTURE_RESOLUTION
        cols = int(round((TABLE_Y[1] - TABLE_Y[0]) / s))
        rows = int(round((TABLE_X[1] - TABLE_X[0]) / s))
        # texture pixel (col, row) <-> table (x, y): row along x, col along y
        to_table = np.array([[0.0, s, TABLE_X[0] + 0.5 * s], [s, 0.0, TABLE_Y[0] + 0.5 * s], [0.0, 0.0, 1.0]])
        xs = TABLE_X[0] + (np.arange(rows) + 0.5) * s
        ys = TABLE_Y[0] + (np.arange(cols) + 0.5) * s
        parity = (np.floor(xs / CHECKER).astype(int)[:, None] + np.floor(ys / CHECKER).astype(int)[None, :]) % 2
        tex = np.where(parity[..., None] == 0, np.array(_CHECKER_A, np.uint8), np.array(_CHECKER_B, np.uint8))
        tex = np.ascontiguousarray(tex.astype(np.uint8))

        def px(x: float, y: float) -> NDArray[np.float64]:
            return np.array([(y - TABLE_Y[0]) / s - 0.5, (x - TABLE_X[0]) / s - 0.5])

        def circle(x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
            c = _fixed(px(x, y))
            cv2.circle(tex, (int(c[0]), int(c[1])), int(round(r / s * _ONE)), colour, -1, cv2.LINE_AA, _SHIFT)

        def poly(points: list[tuple[float, float]], colour: tuple[int, int, int]) -> None:
            pts = _fixed(np.array([px(x, y) for x, y in points]))
            cv2.fillPoly(tex, [pts], colour, cv2.LINE_AA, _SHIFT)

        edge = int(round(0.015 / s))
        cv2.rectangle(tex, (0, 0), (cols - 1, rows - 1), _TABLE_EDGE, edge)
        circle(0.0, 0.0, 0.12, _ROBOT_PLATE)
        for shape, x, y, size, colour in _LANDMARKS:
            if shape == "circle":
                circle(x, y, size, colour)
            elif shape == "square":
                poly([(x - size, y - size), (x - size, y + size), (x + size, y + size), (x + size, y - size)], colour)
            elif shape == "triangle":
                poly([(x + size, y), (x - size, y - size), (x - size, y + size)], colour)
            else:  # cross
                w = size / 3
                poly([(x - size, y - w), (x - size, y + w), (x + size, y + w), (x + size, y - w)], colour)
                poly([(x - w, y - size), (x - w, y + size), (x + w, y + size), (x + w, y - size)], colour)
        circle(self._bowl[0] - 0.01, self._bowl[1] + 0.01, BOWL_RADIUS * 1.05, _SHADOW)
        circle(self._treat[0] - 0.004, self._treat[1] + 0.004, TREAT_RADIUS * 1.2, _SHADOW)
        return tex, to_table

    def _draw_table(self, img: NDArray[np.uint8], cam: Camera, k: NDArray[np.float64]) -> None:
        """Fill ``img`` with the table plane, floor and the wall above the horizon."""
        h, w = img.shape[:2]
        if cam.position[2] <= 1e-4:
            img[:] = _UNDER
            return
        homography = cam.plane_homography(k) @ self._texture_to_table
        cv2.warpPerspective(
            self._texture, homography, (w, h), dst=img, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=_FLOOR,
        )
        # pixels whose rays do not hit the plane in front of the camera see the wall
        line = cam.upward_ray_line(k)
        line = line / max(np.abs(line[:2]).max(), 1e-12)
        sky = half_plane_polygon(line + np.array([0.0, 0.0, 1e-3]), w, h)
        if len(sky) >= 3:
            cv2.fillPoly(img, [_fixed(sky)], _WALL, cv2.LINE_8, _SHIFT)

    # -- 3-D primitives ----------------------------------------------------------------
    @staticmethod
    def _fill(img: NDArray[np.uint8], cam: Camera, k: NDArray[np.float64], pts_cam: NDArray[np.float64],
              colour: tuple[int, int, int]) -> None:
        pts = clip_polygon_near(pts_cam)
        if len(pts) >= 3:
            cv2.fillPoly(img, [_fixed(cam.project(pts, k))], colour, cv2.LINE_AA, _SHIFT)

    def _draw_frustum(self, img: NDArray[np.uint8], cam: Camera, k: NDArray[np.float64], centre: NDArray[np.float64],
                      r_base: float, r_top: float, height: float, side: tuple[int, int, int],
                      top: tuple[int, int, int], hollow: bool, floor: tuple[int, int, int] | None = None,
                      rim: tuple[int, int, int] | None = None) -> None:
        """A vertical (truncated) cone standing on the table: a bowl (``hollow``) or a solid puck."""
        ang = np.linspace(0.0, 2 * math.pi, _RING, endpoint=False)
        ring = np.column_stack([np.cos(ang), np.sin(ang), np.zeros(_RING)])
        base = centre + ring * [r_base, r_base, 0.0]
        top_ring = centre + ring * [r_top, r_top, 0.0] + [0.0, 0.0, height]
        base_c, top_c = cam.to_camera(base), cam.to_camera(top_ring)
        sees_top = cam.position[2] > centre[2] + height
        # front-facing walls: outward normal points toward the camera
        mid = ang + math.pi / _RING  # angle midway between ring points i and i + 1
        normal = np.column_stack([np.cos(mid), np.sin(mid), np.full(_RING, (r_base - r_top) / height)])
        wall_mid = centre + np.column_stack([np.cos(mid), np.sin(mid), np.zeros(_RING)]) * (r_base + r_top) / 2
        wall_mid[:, 2] += height / 2
        facing = np.einsum("ij,ij->i", normal, cam.position - wall_mid) > 0
        light = 0.75 + 0.25 * normal[:, 0] / np.linalg.norm(normal, axis=1)  # lit from +x (the camera side)

        def walls() -> None:
            for i in np.flatnonzero(facing):
                j = (i + 1) % _RING
                quad = np.array([base_c[i], base_c[j], top_c[j], top_c[i]])
                shade = tuple(int(c * light[i]) for c in side)
                self._fill(img, cam, k, quad, shade)  # type: ignore[arg-type]

        if hollow:
            if sees_top:
                self._fill(img, cam, k, top_c, top)
                if floor is not None:
                    inner = cam.to_camera(centre + ring * [r_base * 0.8, r_base * 0.8, 0.0] + [0, 0, 0.012])
                    self._fill(img, cam, k, inner, floor)
            walls()
        else:
            walls()
            if sees_top:
                self._fill(img, cam, k, top_c, top)
        if rim is not None and sees_top and (top_c[:, 2] > 0.01).all():
            uv = _fixed(cam.project(top_c, k))
            depth = float(top_c[:, 2].mean())
            thick = max(1, int(round(0.006 * k[0, 0] / depth)))
            cv2.polylines(img, [uv], True, rim, thick, cv2.LINE_AA, _SHIFT)

    def _draw_objects(self, img: NDArray[np.uint8], cam: Camera, k: NDArray[np.float64]) -> None:
        """Bowl and treat, the farther one first."""
        bowl = (self._bowl, BOWL_BASE_RADIUS, BOWL_RADIUS, BOWL_HEIGHT, _BOWL_OUT, _BOWL_IN, True, _BOWL_FLOOR, _BOWL_RIM)
        treat = (self._treat, TREAT_RADIUS, TREAT_RADIUS, TREAT_HEIGHT, _TREAT_SIDE, _TREAT_TOP, False, None, None)
        objects = sorted((bowl, treat), key=lambda o: -float(np.linalg.norm(o[0] - cam.position)))
        for centre, r_base, r_top, height, side, top, hollow, floor, rim in objects:
            self._draw_frustum(img, cam, k, centre, r_base, r_top, height, side, top, hollow, floor, rim)

    # -- views ------------------------------------------------------------------------------
    def _background(self, width: int, height: int) -> NDArray[np.uint8]:
        key = (width, height)
        bg = self._backgrounds.get(key)
        if bg is None:
            cam = self.third_person_camera
            k = cam.intrinsics(width, height)
            bg = np.empty((height, width, 3), np.uint8)
            self._draw_table(bg, cam, k)
            self._draw_objects(bg, cam, k)
            bg.setflags(write=False)
            self._backgrounds[key] = bg
        return bg

    def render_third_person(self, q: ArrayLike, finger: float, width: int = 640, height: int = 480) -> NDArray[np.uint8]:
        """The fixed camera's view: table, bowl, treat, then the arm painted far to near."""
        img = self._background(width, height).copy()
        cam = self.third_person_camera
        k = cam.intrinsics(width, height)
        frames = forward_kinematics(q)
        tcp = frames[TCP_INDEX]
        w = min(max(float(finger), 0.0), 0.04)

        def tool(x: float, y: float, z: float) -> NDArray[np.float64]:
            return tcp[:3, :3] @ np.array([x, y, z]) + tcp[:3, 3]

        p = [f[:3, 3] for f in frames]
        # (start, end, radius [m], colour, outline?)
        parts: list[tuple[NDArray[np.float64], NDArray[np.float64], float, tuple[int, int, int], bool]] = [
            (p[0], p[2], 0.065, _LINK_COLOURS[0], True),
            (p[2], p[3], 0.06, _LINK_COLOURS[1], True),
            (p[3], p[4], 0.055, _LINK_COLOURS[2], True),
            (p[4], p[5], 0.05, _LINK_COLOURS[3], True),
            (p[5], p[7], 0.045, _LINK_COLOURS[4], True),
            (p[7], p[FLANGE_INDEX], 0.04, _LINK_COLOURS[5], True),
            (p[FLANGE_INDEX], tool(0, 0, -0.06), 0.035, _HAND, True),
            (tool(0, -0.1, -0.065), tool(0, 0.1, -0.065), 0.025, _HAND, True),
        ]
        for s in (-1.0, 1.0):
            y = s * (w + 0.006)
            parts.append((tool(0, y, -0.06), tool(0, y, 0.0), 0.008, _FINGER, False))
        caps = [(p[i], r) for i, r in ((2, 0.07), (4, 0.06), (5, 0.055), (7, 0.05))]

        items: list[tuple[float, int, Any]] = []
        for n, (a, b, r, colour, outline) in enumerate(parts):
            ac, bc = cam.to_camera(np.array([a, b]))
            items.append((float(ac[2] + bc[2]) / 2, n, ("segment", ac, bc, r, colour, outline)))
        for n, (c, r) in enumerate(caps):
            cc = cam.to_camera(c[None])[0]
            items.append((float(cc[2]) + 1e-3, len(parts) + n, ("cap", cc, r)))
        items.sort(key=lambda t: (-t[0], t[1]))
        f = k[0, 0]
        for _, _, item in items:
            if item[0] == "segment":
                _, ac, bc, r, colour, outline = item
                seg = clip_segment_near(ac, bc)
                if seg is None:
                    continue
                uv = _fixed(cam.project(np.array(seg), k))
                depth = max(float(seg[0][2] + seg[1][2]) / 2, 1e-3)
                thick = max(1, int(round(2 * r * f / depth)))
                a_px, b_px = (int(uv[0, 0]), int(uv[0, 1])), (int(uv[1, 0]), int(uv[1, 1]))
                if outline:
                    cv2.line(img, a_px, b_px, _OUTLINE, thick + 2, cv2.LINE_AA, _SHIFT)
                cv2.line(img, a_px, b_px, colour, thick, cv2.LINE_AA, _SHIFT)
            else:
                _, cc, r = item
                if cc[2] < 0.01:
                    continue
                uv = _fixed(cam.project(cc[None], k))[0]
                rad = max(1, int(round(r * f / cc[2] * _ONE)))
                cv2.circle(img, (int(uv[0]), int(uv[1])), rad, _JOINT_CAP, -1, cv2.LINE_AA, _SHIFT)
        return img

    def render_wrist(self, q: ArrayLike, finger: float, width: int = 640, height: int = 480) -> NDArray[np.uint8]:
        """The hand camera's view: table and landmarks, bowl, treat, and the finger tips."""
        cam = self.wrist_camera(q)
        k = cam.intrinsics(width, height)
        img = np.empty((height, width, 3), np.uint8)
        self._draw_table(img, cam, k)
        self._draw_objects(img, cam, k)
        w = min(max(float(finger), 0.0), 0.04)
        cam_from_tool = _WRIST_ROTATION.T
        offset = np.asarray(WRIST_CAMERA_OFFSET)
        for s in (-1.0, 1.0):
            y0, y1 = s * w, s * (w + 0.012)
            # the finger's face toward the camera (tool x = +0.01) and its silhouette
            box = np.array([[x, y, z] for x in (-0.01, 0.01) for y in (y0, y1) for z in (-0.055, 0.0)])
            pts = (box - offset) @ cam_from_tool.T
            uv = cam.project(pts, k)
            hull = cv2.convexHull(_fixed(uv))
            cv2.fillConvexPoly(img, hull, _FINGER, cv2.LINE_AA, _SHIFT)
            face = pts[[4, 5, 7, 6]]
            cv2.fillConvexPoly(img, _fixed(cam.project(face, k)), _FINGER_FACE, cv2.LINE_AA, _SHIFT)
        return img

    def render(self, q: ArrayLike, finger: float, width: int = 640, height: int = 480) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """(wrist_rgb, third_person_rgb): uint8 ``height x width x 3`` RGB images.

        ``q``: the 7 arm joint positions [rad] (extra entries ignored); ``finger``: the
        finger joint position [m] (0 closed, 0.04 open).
        """
        return self.render_wrist(q, finger, width, height), self.render_third_person(q, finger, width, height)
