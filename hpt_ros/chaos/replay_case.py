"""One seeded in-process chaos run on the replay transport (simulated time, deterministic).

The fake robot publishes its sensors; the fault injector republishes them, faulty, under
``/chaos``; the policy node reads those, through a clock that jumps, with an adversarial
engine that fails and stalls on plan; an enable switch toggles motion; the safety checker
watches everything that comes out.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec, load_spec

from .checker import SafetyChecker
from .faults import IN_PROCESS_FAULTS, plan_faults
from .injector import FaultInjector, remapped_spec
from .stand_ins import AdversarialEngine, EnableSwitch, FaultyEngine, JumpingClockTransport

__all__ = ["CHAOS_PREFIX", "hold_reason_of", "node_counts_of", "run_replay_case"]

CHAOS_PREFIX = "/chaos"
#: an inference slower than this is a deadline miss; two in a row hold (what the slowdowns aim at)
CHAOS_EXECUTION = {"deadline_ms": 25.0, "max_deadline_misses": 2}
_START = 100.0


def hold_reason_of(node: Any) -> str:
    """The policy node's current hold reason from its safety events ('' while commanding)."""
    events = node.runtime.events
    return events[-1].reason if events and events[-1].kind == "hold" else ""


def node_counts_of(node: Any) -> tuple[int, int]:
    """The policy node's own (ticks, commands) counters."""
    stats = node.runtime.stats()
    return stats.ticks, stats.commands


def run_replay_case(seed: int, *, duration: float = 4.0, image_size: int = 64, faults: int = 6,
                    spec: RobotSpec | None = None) -> dict[str, Any]:
    """Run one case; returns its plan, the faults each part injected and the checker's counts."""
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.policy_node import PolicyNode
    from hpt_ros.ros.replay import ReplayTransport

    started = time.perf_counter()
    spec = spec or load_spec("franka_fr3")
    rng = np.random.default_rng(seed)
    plan = plan_faults(rng, IN_PROCESS_FAULTS, duration, count=faults,
                       camera_topics=[s.topic for s in spec.image_sensors])
    policy_spec = remapped_spec(spec, CHAOS_PREFIX, CHAOS_EXECUTION)
    world = ReplayTransport("fake_robot", {"width": image_size, "height": image_size, "seed": seed,
                                           "camera_rate_hz": 30.0, "joint_state_rate_hz": 100.0},
                            start_time=_START, record=False)
    FakeRobot(world, spec)
    injector = FaultInjector(world.sibling("fault_injector"), spec, plan, CHAOS_PREFIX, _START)
    switch = EnableSwitch(world.sibling("enable_switch"), spec, plan, _START)
    engine = FaultyEngine(AdversarialEngine(policy_spec, np.random.default_rng(seed + 1)), plan,
                          lambda: world.now() - _START)
    clock = JumpingClockTransport(world.sibling("policy_node"), plan, _START)
    node = PolicyNode(clock, policy_spec, engine)
    checker = SafetyChecker(world.sibling("chaos_checker"), spec, CHAOS_PREFIX + spec.state_sensors[0].topic,
                            lambda: hold_reason_of(node))
    try:
        world.run(until=_START + duration)
    finally:
        node.close()
    injected = {**injector.counts, **engine.counts}
    if clock.jumps_applied:
        for f in plan:
            if f.kind.startswith("clock_jump") and f.start < duration:
                injected[f.kind] = injected.get(f.kind, 0) + 1
    if switch.toggles:
        injected["enable_toggle"] = switch.toggles
    return {
        "seed": seed, "kind": "replay", "duration_s": duration, "plan": [f.as_dict() for f in plan],
        "injected": injected, "counts": checker.finish(), "commands": checker.commands,
        "hold_reasons": checker.hold_reasons, "policy_modes": engine.inner.modes, "examples": checker.examples,
        "wall_s": round(time.perf_counter() - started, 2),
    }
