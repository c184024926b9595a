#!/usr/bin/env bash
# The training component's GPU checks, for a machine with JAX and CUDA but no TensorFlow (Keras on JAX):
# the throughput benchmark on the default digits CNN and on a CNN big enough to occupy the GPU, then the
# model tests (each family, every knob, mixed precision) on the GPU. Wheels for what the machine lacks
# (keras, keras-hub, pydantic, ...) in .whl/, when given. Logs go to $OUT (default: ./gpu-logs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" | tee -a "$OUT/device.txt"
python3 benchmarks/bench_training.py --repeats "${REPEATS:-5}" --rows 20000 --epochs 6 --skip-memory 2>&1 |
    tee "$OUT/bench_default.txt"
python3 benchmarks/bench_training.py --repeats "${REPEATS_BIG:-3}" --rows 50000 --epochs 4 --skip-memory \
    --image-shape 32 32 3 --filters 64 128 256 --batch-size 512 2>&1 | tee "$OUT/bench_big.txt"
python3 -m pytest tests/unit/test_models.py -q -p no:cacheprovider -W ignore 2>&1 | tee "$OUT/test_models.txt"
