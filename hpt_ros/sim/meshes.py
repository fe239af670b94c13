"""Light render meshes for the Franka: the asset's OBJ files decimated by vertex clustering.

The Panda meshes of ``dm-robotics-panda`` hold 134 k triangles; on Mesa's software
rasteriser they cost ~19 ms of the ~21 ms a 224x224 view takes. Clustering vertices on a
``cell`` grid (each cell's vertices merged into their mean, collapsed triangles
dropped) keeps the silhouette at camera resolution with a tenth of the triangles. The
asset colours its links through a palette texture (white, dark grey, light grey); each
triangle takes the palette colour under its texture coordinates, and each colour becomes
its own mesh, so the decimated arm keeps its look. Physics keeps the original meshes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["PALETTE", "decimated_parts", "read_obj"]

#: the asset texture's colours (RGB 0..1), by name
PALETTE: dict[str, tuple[float, float, float]] = {
    "white": (0.95, 0.95, 0.95),
    "dark": (0.26, 0.26, 0.27),
    "light": (0.80, 0.80, 0.80),
}


def read_obj(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """(vertices, texcoords, faces, face_texcoords) of a triangulated OBJ (polygons are fanned)."""
    verts, tex, faces, face_tex = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                tex.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                vi = [int(c[0]) - 1 for c in corners]
                ti = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners]
                for k in range(1, len(vi) - 1):
                    faces.append((vi[0], vi[k], vi[k + 1]))
                    face_tex.append((ti[0], ti[k], ti[k + 1]))
    if not verts or not faces:
        raise ValueError(f"{path}: no vertices or faces")
    return (np.asarray(verts, dtype=np.float64), np.asarray(tex, dtype=np.float64).reshape(-1, 2),
            np.asarray(faces, dtype=np.int64), np.asarray(face_tex, dtype=np.int64))


def _face_colours(tex: NDArray[np.float64], face_tex: NDArray[np.int64], texture: Path | None) -> list[str]:
    """The palette colour of each face, from the texture under its texture coordinates."""
    if texture is None or tex.size == 0 or (face_tex < 0).any():
        return ["white"] * len(face_tex)
    import cv2

    img = cv2.imread(str(texture), cv2.IMREAD_COLOR)
    if img is None:
        return ["white"] * len(face_tex)
    rgb = img[..., ::-1].astype(np.float64) / 255.0
    h, w = rgb.shape[:2]
    uv = tex[face_tex].mean(axis=1)
    px = np.clip((uv[:, 0] % 1.0) * w, 0, w - 1).astype(int)
    py = np.clip((1.0 - uv[:, 1] % 1.0) * h, 0, h - 1).astype(int)
    sampled = rgb[py, px]
    names = list(PALETTE)
    centres = np.array([PALETTE[n] for n in names])
    nearest = np.argmin(((sampled[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    return [names[i] for i in nearest]


def _cluster(verts: NDArray[np.float64], faces: NDArray[np.int64], cell: float
             ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    keys = np.floor(verts / cell).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = int(inverse.max()) + 1
    sums = np.zeros((n, 3))
    np.add.at(sums, inverse, verts)
    counts = np.bincount(inverse, minlength=n)[:, None]
    new_verts = sums / counts
    new_faces = inverse[faces]
    keep = ((new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2])
            & (new_faces[:, 0] != new_faces[:, 2]))
    return new_verts, new_faces, keep


@lru_cache(maxsize=32)
def decimated_parts(obj_path: str, texture: str | None, cell: float = 0.006
                    ) -> tuple[tuple[str, NDArray[np.float64], NDArray[np.int64]], ...]:
    """((colour, vertices, faces), ...) of ``obj_path`` decimated on a ``cell`` [m] grid, one part per colour."""
    verts, tex, faces, face_tex = read_obj(Path(obj_path))
    colours = np.asarray(_face_colours(tex, face_tex, Path(texture) if texture else None))
    new_verts, new_faces, keep = _cluster(verts, faces, cell)
    parts = []
    for colour in PALETTE:
        mask = keep & (colours == colour)
        if mask.sum() < 4:
            continue
        f = new_faces[mask]
        used, local = np.unique(f, return_inverse=True)
        parts.append((colour, new_verts[used], local.reshape(f.shape)))
    return tuple(parts)
