#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) from the repository root, bounded to 8 minutes.
# On a lent GPU machine: `bash bench/gpu_check.sh --out "$OUT"` (its own python3 holds torch
# with CUDA; Spark is not needed). Here, on the CPU: `PYTHON=.venv/bin/python bash
# bench/gpu_check.sh --quick --out /tmp/gpu-check`. Exit 0 only when every section ran.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi: the CPU fallback runs"
exec timeout 480 env PYTHONUNBUFFERED=1 "$PYTHON" bench/gpu_check.py "$@"
