#!/usr/bin/env bash
# One call on a lent GPU machine (issue 12): the CUDA tests, then the GPU benchmark.
#   bash bench/gpu_check.sh            # run from the repository root; results also go to $OUT
# That machine's image has torch, timm, pandas, pyarrow and pytest but not duckdb: bring its wheel
# along (here: `echo /.whl/ >> .git/info/exclude`, then `pip download --no-deps --only-binary=:all:
# --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl duckdb==2.0.1`, and name .whl in
# the device tool's carry); it is installed into /tmp/site, offline.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, duckdb; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'duckdb', duckdb.__version__)" | tee -a "$OUT/gpu.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/measure/test_cuda.py \
  "tests/measure/test_profile.py::test_bench_on_cuda_uses_events_and_reports_allocated_memory" 2>&1 | tail -25 | tee "$OUT/cuda_tests.txt"
timeout 280 python3 bench/gpu_bench.py 2>&1 | grep -v Warning | tee "$OUT/gpu_bench.txt"
