#!/usr/bin/env bash
# Reproduce the default model models/franka_fr3_feed_dog (what `hpt-ros demo` runs) and its
# closed-loop table: records 150 demonstrations of the scripted feed-dog expert on the
# simulated Franka in simulated time, trains a first tiny HPT from them, lets it drive 100
# more scenes until the expert takes over and records the expert's corrections (one DAgger
# round), trains the final model on both sets, writes hpt.yaml + model.safetensors
# (+ summary.yaml, loss_curve.png), then runs `hpt-ros sim-eval` of the expert, the trained
# and the untrained model on the same 50 held-out scenes (seed 1000) and writes the table
# to models/franka_fr3_feed_dog/sim_eval.md.
#
#   bash scripts/make_default_model.sh                 # about 3.5 hours on 2 free CPU cores (record ~20 min,
#                                                      # image features ~45 min, two trainings ~70 min,
#                                                      # takeover scenes ~15 min, evaluation ~40 min)
#   bash scripts/make_default_model.sh --work runs/dm  # keep the episodes, feature cache, runs, reports and videos
#
# Extra arguments go to `python -m hpt_ros.train.default_model` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$PYTHON" -m hpt_ros.train.default_model --out models/franka_fr3_feed_dog --takeover-episodes 100 --evaluate 50 "$@"
