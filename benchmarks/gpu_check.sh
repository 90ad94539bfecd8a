#!/usr/bin/env bash
# The GPU checks and timings, in one call on a machine with a CUDA device:
# tests/test_cuda.py (CUDA graphs vs eager, resume, NaN guard, bf16, compile,
# TF32, CLI) and the training benchmark with every CUDA variant, the replay
# floors and the full schedule (float32 and TF32 graphs, eager) for seeds 0
# and 1. Needs the recipe's features
# (`bash recipes/flite/run.sh --stop-stage 2`). Logs go to $OUT (or ./gpu_logs).
#
#     bash benchmarks/gpu_check.sh [bench_train.py arguments]
set -uo pipefail
[ "$#" -gt 0 ] || set -- --threads 1 --compile --full-eager --full-seeds 0 1
cd "$(dirname "$0")/.."
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py -s 2>&1 | tee "$out/test_cuda.log"
tests=$?
python3 benchmarks/bench_train.py "$@" 2>&1 | tee "$out/bench_train.log"
bench=$?
echo "test_cuda exit $tests, bench_train exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
