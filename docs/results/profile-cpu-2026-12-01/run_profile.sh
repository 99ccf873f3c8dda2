#!/usr/bin/env bash
# One thread on one core, each backend twice, alternating: CPU time per step, which a job on the
# other core cannot inflate. One JSON line per run to stdout. Run from anywhere:
#   bash docs/results/profile-cpu-2026-12-01/run_profile.sh > profile.jsonl
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."  # the repository root: the scripts import trainer
py=.venv/bin/python
one_thread="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for _ in 1 2; do
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 TF_NUM_INTRAOP_THREADS=1 \
        TF_NUM_INTEROP_THREADS=1 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false" \
        PYTHONPATH=. taskset -c 1 "$py" "$here/profile_step_tf.py" | sed -n 's/^RESULT //p'
    KERAS_BACKEND=jax XLA_FLAGS="$one_thread" PYTHONPATH=. \
        taskset -c 1 "$py" "$here/profile_step_jax.py" | sed -n 's/^RESULT //p'
done
