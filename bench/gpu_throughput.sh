#!/usr/bin/env bash
# The throughput run of issue 18 on one GPU, in about 4 minutes: full-size step sweeps, speed-ups, loader cores.
#
#   bench/gpu_throughput.sh OUT            on a GPU node (python3 with this package importable and funasr installed)
#   bench/gpu_throughput.sh OUT --dry-run  the same code paths on the CPU, small (1 encoder and LLM block, full
#                                          widths, a 4096-token vocabulary, small batches): a check before GPU time
#
# Writes into OUT: env.txt (GPU, versions), stage1.json/.log (stage 1: token-batch sweep + each speed-up on its own),
# stages23.json/.log (stages 2 and 3: sweeps), loader.json/.log (funasr's loader, N workers; cores per GPU from the
# rates above), summary.txt (the compact tables, also printed last). Every part is bounded in time (--budget_s of
# bench/train_step.py, --seconds of bench/loader.py); a part that fails does not stop the others.
#
# What runs (see the docstrings of bench/train_step.py and bench/loader.py for what each number is):
#   1. stage 1, --bf16 (train.py bf16=True: bf16 LLM, bf16 autocast over the whole forward), batches of a
#      WenetSpeech-M-like length mix cut by funasr's own BatchSampler with the utterance cap raised and the sort
#      buffer grown with the batch (what a large token batch needs: dataset_conf batch_size_sample_max, sort_size):
#      token batches 8192 (the plan's), 32768, 131072, 262144 (an out-of-memory point is the limit); then at 32768
#      each speed-up on its own: bf16_llm (no autocast over the encoder), nondet (cudnn.deterministic False),
#      fused_adamw, fixed10s (10 s utterances: GPU_NOTES' calibration), best (those that helped, together),
#      compile_encoder (torch.compile of each encoder layer, the FSMN conv eager, compile time apart, at most 70 s).
#      Budget 140 s.
#   2. stages 2 and 3, the same settings: 4096 (stage 3's plan), 8192 (stage 2's plan), 32768, 131072. Budget 80 s.
#   3. the loader with 0, 2, 8 workers, 5 s each (the project's kaldi_fbank; then funasr's own backend, 8 workers),
#      then 8 workers with kaldi-native-fbank; cores per GPU from the stage rates of 1 and 2. About 35 s.
# Expected wall: about 4.5 minutes (at most about 5.5 if every child runs to its kill time).
set -u
OUT=${1:?usage: bench/gpu_throughput.sh OUT [--dry-run]}
DRY=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=${PYTHON:-python3}
T0=$(date +%s)

if [ "$DRY" = "--dry-run" ]; then
  # inductor's cache in memory, removed at the end (the compile variant writes ~100 MB)
  export TORCHINDUCTOR_CACHE_DIR=$(mktemp -d /dev/shm/gpu_throughput_inductor.XXXXXX 2>/dev/null || mktemp -d)
  trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT
  DEV="--device cpu --depth 1 --threads 1"
  S1_TOKENS=600,1200,2400; S23_TOKENS=600; VT=1200; S1_BUDGET=90; S23_BUDGET=60; CT=30
  STEPS="--steps 2 --warmup 1"; WORKERS=0,1; LSEC=3
elif [ -n "$DRY" ]; then
  echo "usage: bench/gpu_throughput.sh OUT [--dry-run]" >&2; exit 2
else
  DEV="--device cuda"
  S1_TOKENS=8192,32768,131072,262144; S23_TOKENS=4096,8192,32768,131072; VT=32768; S1_BUDGET=140; S23_BUDGET=80
  CT=70; STEPS="--steps 3 --warmup 2"; WORKERS=0,2,8; LSEC=5
fi
COMMON="--scale full $DEV --bf16 --lengths wenet_m --sample_max 100000 --sort_size scaled $STEPS"

{
  echo "date: $(date -Is)  host: $(hostname)  mode: ${DRY:-gpu}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: none"
  $PY - <<'ENV'
import platform, torch, funasr, transformers
try: import torchaudio; ta = torchaudio.__version__
except Exception as e: ta = f'none ({type(e).__name__})'
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu',
      torch.cuda.get_device_name() if torch.cuda.is_available() else None, 'funasr', funasr.__version__,
      'transformers', transformers.__version__, 'torchaudio', ta)
ENV
  echo "cpus: $(nproc)"; git rev-parse HEAD 2>/dev/null || true
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== 1. stage 1: sweep + speed-ups ($(( $(date +%s) - T0 )) s)"
$PY bench/train_step.py $COMMON --stages stage1 --batch_tokens $S1_TOKENS \
    --variants bf16_llm,nondet,fused_adamw,fixed10s,best,compile_encoder --variant_stages stage1 \
    --variant_tokens $VT --compile_timeout_s $CT --budget_s $S1_BUDGET --json "$OUT/stage1.json" \
    > "$OUT/stage1.log" 2>&1 || echo "stage 1 bench: exit $? (see $OUT/stage1.log)"

echo "== 2. stages 2 and 3: sweeps ($(( $(date +%s) - T0 )) s)"
$PY bench/train_step.py $COMMON --stages stage2,stage3 --batch_tokens $S23_TOKENS --budget_s $S23_BUDGET \
    --json "$OUT/stages23.json" > "$OUT/stages23.log" 2>&1 || echo "stages 2-3 bench: exit $? (see $OUT/stages23.log)"

echo "== 3. loader ($(( $(date +%s) - T0 )) s)"
GJ=""; for f in "$OUT/stage1.json" "$OUT/stages23.json"; do [ -f "$f" ] && GJ="$GJ${GJ:+,}$f"; done
$PY bench/loader.py --workers $WORKERS --seconds $LSEC --fbank project ${GJ:+--gpu_json $GJ} \
    --json "$OUT/loader.json" > "$OUT/loader.log" 2>&1 || echo "loader bench: exit $? (see $OUT/loader.log)"
FUNASR_FBANK=$($PY -c "import funasr.utils.fbank as f; print('torchaudio' if f._HAS_TORCHAUDIO else 'knf')" 2>/dev/null)
$PY bench/loader.py --workers ${WORKERS##*,} --seconds $LSEC --fbank "${FUNASR_FBANK:-knf}" ${GJ:+--gpu_json $GJ} \
    --json "$OUT/loader_funasr.json" > "$OUT/loader_funasr.log" 2>&1 || echo "loader bench (funasr's fbank): exit $?"

echo "== summary ($(( $(date +%s) - T0 )) s)"
{
  # the compact tables: each bench's own last lines
  for f in stage1 stages23; do
    [ -f "$OUT/$f.log" ] && sed -n '/^scale full/,$p' "$OUT/$f.log" | cut -c1-220
  done
  for f in loader loader_funasr; do
    [ -f "$OUT/$f.log" ] && { head -1 "$OUT/$f.log" | cut -c1-240; sed -n '/^ *fbank workers/,$p' "$OUT/$f.log"; }
  done
  echo "wall: $(( $(date +%s) - T0 )) s"
} > "$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"
