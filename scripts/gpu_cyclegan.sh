#!/usr/bin/env bash
# A horse2zebra CycleGAN run for a machine with a GPU (the shipped translator is a FastCUT pair trained on the
# CPU; this is the option for people who have a GPU, e.g. as a teacher to distil from): trains from scratch, or
# from INIT_FROM=<a CycleGAN checkpoint>, and brings back fp16 weights and the log under $OUT (each file <= 16 MiB).
#
# Data path: the train split (.gpu_data/trainA|trainB, `python scripts/make_gpu_data.py`) is decoded once and
# kept on the device as uint8 at the 286-px load size; random 128-px crops and flips are cut there each step
# (train on crops, translate at full size: crop_size=128 with image_size 256). bf16 autocast, channels_last.
# The log has images/s every LOG steps and GPU utilisation every 20 s (nvidia-smi).
#
#   MINUTES=8.5 BATCH=16 LR=4e-4 bash scripts/gpu_cyclegan.sh          # on the device machine
#   DRY_RUN=1 bash scripts/gpu_cyclegan.sh                              # a few steps on the CPU (the suite runs it)
#
# Batch and learning rate: batch 16 of 128-px crops has the pixels of batch 4 at 256 px; lr 2e-4 * sqrt(16/4).
# Neither is measured on a GPU yet: the log's img/s says which batch to try next.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
MINUTES=${MINUTES:-8.5}; BATCH=${BATCH:-16}; LR=${LR:-4e-4}; SET=${SET:-}; LOG=${LOG:-200}
DATA_A=${DATA_A:-.gpu_data/trainA}; DATA_B=${DATA_B:-.gpu_data/trainB}
RUN=${RUN:-/tmp/h2z_run}
PY=${PY:-python3}
DEVICE=auto; AMP=bf16; BOUND="--minutes $MINUTES"; EXTRA="--data-on-device true --channels-last true"
INIT=""; [ -n "${INIT_FROM:-}" ] && INIT="--init-from $INIT_FROM"
if [ "${DRY_RUN:-0}" = 1 ]; then          # CPU: fp32 (bf16 is emulated and slow there), 3 steps, a small net
  DEVICE=cpu; AMP=off; BOUND="--steps 3"; LOG=1; BATCH=2; INIT=""
  SET="$SET --set base_channels=8 --set res_blocks=2 --set d_base_channels=8"
fi
rm -rf "$RUN"
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "no nvidia-smi"; } | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 20 > "$OUT/gpu_util.txt" 2>&1 &
SMI=$!
$PY -m gancore train --model cyclegan --data "$DATA_A" --data-b "$DATA_B" --device $DEVICE --amp $AMP \
  --batch-size "$BATCH" --lr-g "$LR" --lr-d "$LR" $BOUND --lr-decay-start 0.5 $EXTRA \
  --set crop_size=128 --set domain_a=horse --set domain_b=zebra \
  --out-dir "$RUN" --log-every-steps "$LOG" --sample-every-steps 2000 --checkpoint-every-steps 2000 \
  --save-samples $INIT $SET 2>&1 | tee "$OUT/train_log.txt" | grep -E "^\[|step [0-9]*000 |rror"
STATUS=${PIPESTATUS[0]}
kill $SMI 2>/dev/null
[ "$STATUS" = 0 ] || { echo "training failed ($STATUS)"; exit "$STATUS"; }
$PY - "$RUN/last.safetensors" "$OUT" <<'PY'
import sys
from gancore.inference import export_weights, header_summary
src, out = sys.argv[1], sys.argv[2]
export_weights(src, f"{out}/h2z_G.safetensors", networks=["G_AB", "G_BA"])
export_weights(src, f"{out}/h2z_D.safetensors", networks=["D_A", "D_B"])
h = header_summary(src)["train"]; print("trained", h["step"], "steps", h["epoch"], "epochs", h["elapsed_s"], "s")
PY
ls "$RUN"/sample_*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$OUT/last_sample.png"
ls -la "$OUT"
