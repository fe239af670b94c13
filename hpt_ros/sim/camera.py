"""Pinhole cameras for the fake robot's renderer: poses, projection, near-plane clipping.

OpenCV conventions: camera x to the right of the image, y down, z forward (the optical
axis); pixel (u, v) = (fx x / z + cx, fy y / z + cy). A ``Camera`` is a world pose (its
rotation's columns are the camera axes in world coordinates) and a horizontal field of
view; the intrinsics follow from the image size, so one camera renders at any size.
Geometry in front of ``NEAR`` only is drawn: polygons and segments are clipped against
that plane in camera coordinates before they are projected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "NEAR",
    "Camera",
    "clip_polygon_near",
    "clip_segment_near",
    "half_plane_polygon",
    "look_at_rotation",
]

NEAR = 0.01  # [m] near clipping plane


def look_at_rotation(eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, 0.0, 1.0)) -> NDArray[np.float64]:
    """World-from-camera rotation for a camera at ``eye`` looking at ``target`` (image up ~ ``up``)."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:  # looking along ``up``: any right-hand axis will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world-from-camera ``rotation`` (3x3), ``position`` (3,), horizontal FOV."""

    rotation: NDArray[np.float64]
    position: NDArray[np.float64]
    hfov_deg: float = 60.0

    @classmethod
    def looking_at(cls, eye: ArrayLike, target: ArrayLike, hfov_deg: float = 60.0) -> "Camera":
        return cls(look_at_rotation(eye, target), np.asarray(eye, dtype=np.float64), hfov_deg)

    def intrinsics(self, width: int, height: int) -> NDArray[np.float64]:
        """3x3 K: square pixels, principal point at the image centre."""
        f = (width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])

    def to_camera(self, points: ArrayLike) -> NDArray[np.float64]:
        """World points (N, 3) -> camera coordinates (N, 3)."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation

    @staticmethod
    def project(points_cam: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
        """Camera points (N, 3), all with z > 0 -> pixels (N, 2) float."""
        z = points_cam[:, 2:3]
        return points_cam[:, :2] / z * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])

    def plane_homography(self, k: NDArray[np.float64]) -> NDArray[np.float64]:
        """3x3 H with pixel ~ H @ (x, y, 1) for points (x, y, 0) of the world plane z = 0."""
        r_cw = self.rotation.T
        t_cw = -r_cw @ self.position
        return k @ np.column_stack([r_cw[:, 0], r_cw[:, 1], t_cw])

    def upward_ray_line(self, k: NDArray[np.float64]) -> NDArray[np.float64]:
        """(a, b, c): pixel (u, v) looks level or upward (cannot see the plane z = 0 ahead) iff a u + b v + c >= 0."""
        return (self.rotation @ np.linalg.inv(k))[2]


def clip_polygon_near(points_cam: NDArray[np.float64], near: float = NEAR) -> NDArray[np.float64]:
    """Sutherland-Hodgman: the part of a planar polygon (N, 3) with z >= near (possibly empty)."""
    if len(points_cam) == 0 or (points_cam[:, 2] >= near).all():
        return points_cam
    out: list[NDArray[np.float64]] = []
    n = len(points_cam)
    for i in range(n):
        cur, nxt = points_cam[i], points_cam[(i + 1) % n]
        cur_in, nxt_in = cur[2] >= near, nxt[2] >= near
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (near - cur[2]) / (nxt[2] - cur[2])
            out.append(cur + t * (nxt - cur))
    return np.array(out).reshape(-1, 3)


def clip_segment_near(
    a: NDArray[np.float64], b: NDArray[np.float64], near: float = NEAR
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """The part of segment a-b (camera coordinates) with z >= near, or None."""
    a_in, b_in = a[2] >= near, b[2] >= near
    if a_in and b_in:
        return a, b
    if not a_in and not b_in:
        return None
    t = (near - a[2]) / (b[2] - a[2])
    cut = a + t * (b - a)
    return (a, cut) if a_in else (cut, b)


def half_plane_polygon(line: NDArray[np.float64], width: int, height: int) -> NDArray[np.float64]:
    """The part of the image rectangle where a u + b v + c >= 0, as a polygon (M, 2) (maybe empty)."""
    corners = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
    val = corners @ line[:2] + line[2]
    out: list[NDArray[np.float64]] = []
    for i in range(4):
        j = (i + 1) % 4
        if val[i] >= 0:
            out.append(corners[i])
        if (val[i] >= 0) != (val[j] >= 0):
            t = val[i] / (val[i] - val[j])
            out.append(corners[i] + t * (corners[j] - corners[i]))
    return np.array(out).reshape(-1, 2)
