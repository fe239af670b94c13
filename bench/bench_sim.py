"""Benchmark: the simulated robot's physics and rendering, side by side in one run.

    python bench/bench_sim.py [--iters 30]

Printed, all measured in this run on this machine:

* physics: one second of simulated time (500 steps of 2 ms) in wall milliseconds, and the
  real-time factor;
* rendering one camera view at 224x224 and 640x480: with the light render meshes the
  scene uses, and with the asset's full meshes (134 k triangles) made visible instead,
  and the ratio between the two;
* a closed-loop episode second on simulated time: physics at 100 Hz + two 224x224 views
  at 15 Hz (what ``hpt-ros sim-eval`` costs per simulated second, without the policy).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hpt_ros.sim import mjcf  # noqa: E402,F401  (sets MUJOCO_GL before mujoco is imported)


def _median_ms(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    import mujoco

    from hpt_ros.sim.feed_dog import FeedDogSim, SceneRenderer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args(argv)

    sim = FeedDogSim(seed=0, episode=0)
    physics_ms = _median_ms(lambda: sim.step(1.0), max(3, args.iters // 10))
    print(f"physics: 1 s simulated in {physics_ms:.1f} ms wall ({1e3 / physics_ms:.0f}x real time)")

    light = sim.model
    full = mjcf.build_model()
    # the full meshes: show the hidden collision copies (group 3) and hide the render copies
    render_geoms = np.array(["_render_" in (full.geom(i).name or "") or
                             "_render_" in (mujoco.mj_id2name(full, mujoco.mjtObj.mjOBJ_MESH, full.geom_dataid[i])
                                            or "") for i in range(full.ngeom)])
    mesh_geom = full.geom_type == mujoco.mjtGeom.mjGEOM_MESH
    full.geom_group[mesh_geom & ~render_geoms] = 0
    full.geom_rgba[mesh_geom & render_geoms, 3] = 0.0
    qpos, mocap = sim.snapshot()
    print("rendering one view (median ms):")
    for width, height in ((224, 224), (640, 480)):
        light_r, full_r = SceneRenderer(light, width, height), SceneRenderer(full, width, height)
        light_ms = _median_ms(lambda: light_r.render(qpos, mocap), args.iters) / 2
        full_ms = _median_ms(lambda: full_r.render(qpos, mocap), args.iters) / 2
        print(f"  {width}x{height}: light meshes {light_ms:.2f} ms, full meshes {full_ms:.2f} ms "
              f"({full_ms / light_ms:.1f}x)")
        light_r.close()
        full_r.close()

    renderer = SceneRenderer(light, 224, 224)

    frame_ticks = {round(i * 100 / 15) for i in range(15)}  # 15 frames per second

    def episode_second() -> None:
        for k in range(100):
            sim.step(0.01)
            if k in frame_ticks:
                renderer.render(*sim.snapshot())

    second_ms = _median_ms(episode_second, max(3, args.iters // 10))
    print(f"one simulated second (physics 100 Hz + 2 views 224x224 at 15 Hz): {second_ms:.0f} ms wall "
          f"({1e3 / second_ms:.1f}x real time, before the policy's own time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
