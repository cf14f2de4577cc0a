#!/usr/bin/env bash
# One prepared GPU session (device tool): continue training the shipped horse2zebra CycleGAN from
# weights/horse2zebra.safetensors and bring the result back compactly under $OUT (files <= 16 MiB each).
# Needs .gpu_data/trainA|trainB (`python scripts/make_gpu_data.py`): the train split only, re-encoded as JPEG.
# The images are decoded once and kept on the GPU (data_on_device); crops and flips happen there.
# Usage: MINUTES=8 BATCH=8 bash scripts/gpu_cyclegan.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
MINUTES=${MINUTES:-8}; BATCH=${BATCH:-8}; SET=${SET:-}
RUN=/tmp/h2z_run
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 20 > "$OUT/gpu_util.txt" 2>&1 &
SMI=$!
INIT=""; [ -f weights/horse2zebra.safetensors ] && INIT="--init-from weights/horse2zebra.safetensors"
python3 -m gancore train --model cyclegan --data .gpu_data/trainA --data-b .gpu_data/trainB \
  --device auto --amp bf16 --batch-size "$BATCH" --minutes "$MINUTES" --lr-decay-start 0.5 \
  --data-on-device true --out-dir "$RUN" --log-every-steps 200 --sample-every-steps 2000 \
  --checkpoint-every-steps 2000 --save-samples $INIT $SET 2>&1 | tee "$OUT/train_log.txt" | grep -E "^\[|step [0-9]*000 |rror"
kill $SMI 2>/dev/null
python3 - "$RUN/last.safetensors" "$OUT" <<'PY'
import sys
from gancore.inference import export_weights, header_summary
src, out = sys.argv[1], sys.argv[2]
export_weights(src, f"{out}/h2z_G.safetensors", networks=["G_AB", "G_BA"])
export_weights(src, f"{out}/h2z_D.safetensors", networks=["D_A", "D_B"])
h = header_summary(src)["train"]; print("trained", h["step"], "steps", h["epoch"], "epochs", h["elapsed_s"], "s")
PY
ls "$RUN"/sample_*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$OUT/last_sample.png"
ls -la "$OUT"
