#!/usr/bin/env bash
# One call on a lent GPU machine (issue 12): the CUDA tests, then the GPU benchmark.
#   bash bench/gpu_check.sh            # run from the repository root; results also go to $OUT
# That machine has torch and timm but not duckdb, streamlit or ray: bring their wheels along in
# bench/wheels (pip download -r requirements-dev.txt -d bench/wheels --no-deps for those missing,
# on this machine, then name bench/wheels in the device tool's carry); they are installed offline.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
if [ -d bench/wheels ]; then
  pip install -q --no-index --find-links bench/wheels duckdb pandas pyarrow huggingface-hub safetensors \
      scipy tqdm hypothesis pytest 2>&1 | tail -3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python - <<'PY' | tee -a "$OUT/gpu.txt"
import torch, timm; print("torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__)
PY
timeout 240 python -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  "tests/test_profile.py::test_bench_on_cuda_uses_events_and_reports_allocated_memory" 2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
timeout 300 python bench/gpu_bench.py 2>&1 | grep -v Warning | tee "$OUT/gpu_bench.txt"
