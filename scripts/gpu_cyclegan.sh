#!/usr/bin/env bash
# One prepared GPU session (device tool): train the shipped horse2zebra CycleGAN, check the fp16 AMP path,
# bring compact results back under $OUT. Needs .gpu_data/trainA|trainB (train split only, re-encoded JPEG).
# Usage: MINUTES=7 BATCH=4 bash scripts/gpu_cyclegan.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
MINUTES=${MINUTES:-7}; BATCH=${BATCH:-4}; WORKERS=${WORKERS:-12}; SET=${SET:-}
RUN=/tmp/h2z_run
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
INIT=""; [ -f weights/horse2zebra.safetensors ] && INIT="--init-from weights/horse2zebra.safetensors"
python3 -m gancore train --model cyclegan --data .gpu_data/trainA --data-b .gpu_data/trainB \
  --device auto --amp bf16 --batch-size "$BATCH" --minutes "$MINUTES" --lr-decay-start 0.5 \
  --num-workers "$WORKERS" --out-dir "$RUN" --log-every-steps 100 --sample-every-steps 1000 \
  --checkpoint-every-steps 1000 --save-samples $INIT $SET 2>&1 | tee "$OUT/train_log.txt" | grep -E "^\[|step [0-9]*000 |error" 
python3 - "$RUN/last.safetensors" "$OUT" <<'PY'
import sys
from gancore.inference import export_weights, header_summary
src, out = sys.argv[1], sys.argv[2]
export_weights(src, f"{out}/h2z_G.safetensors", networks=["G_AB", "G_BA"])
export_weights(src, f"{out}/h2z_D.safetensors", networks=["D_A", "D_B"])
h = header_summary(src)["train"]; print("trained", h["step"], "steps", h["epoch"], "epochs", h["elapsed_s"], "s")
PY
ls "$RUN"/sample_*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$OUT/last_sample.png"
# fp16 AMP (GradScaler) check with the DCGAN on MNIST, against fp32, same machine.
for amp in off fp16 bf16; do
  python3 -m gancore train --model dcgan --data mnist --steps 300 --batch-size 256 --amp $amp \
    --log-every-steps 100 --sample-every-steps 0 --out-dir /tmp/dc_$amp 2>&1 | grep -E "^step 300|error" | sed "s/^/amp=$amp /" | tee -a "$OUT/amp_check.txt"
done
ls -la "$OUT"
