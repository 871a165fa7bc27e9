#!/usr/bin/env bash
# One short end-to-end check of the GPU path (docs/training.md, "GPU check"), for a machine with one NVIDIA GPU:
#   1. install the `gpu` extra (vllm, deepspeed), from local wheels when ./wheels or $WHEELS holds any;
#   2. a small simulated week through Stage 1 (lexicon teachers, CPU);
#   3. build a Qwen3-architecture model of ~95 M parameters from a config (preset gpu100m, tokenizer trained on
#      the week's documents; no hub access);
#   4. serve it as a teacher: vLLM offline (backend vllm) and OpenAI-compatible (`vllm serve` on 127.0.0.1);
#   5. SFT it under `accelerate launch` with DeepSpeed ZeRO-2 (configs/accelerate/zero2.yaml);
#   6. GRPO with vLLM colocated; 7. evaluate SFT and RL on the gold eval users (greedy and the k=4 vote).
# Prints one line per phase with wall time, throughput and peak GPU memory (nvidia-smi, sampled every 0.5 s),
# and writes everything under $OUT (default: a temporary folder). A random-weight teacher answers nonsense: this
# checks plumbing and speed, not quality.
#
# Usage: scripts/gpu-check.sh            (env: PYTHON, WHEELS, OUT, USERS=1500, PORT=8011, SKIP_INSTALL=1)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d -t gpu-check-XXXXXX)}
USERS=${USERS:-1500}
PORT=${PORT:-8011}
WORK="$OUT/gpu-check"
LAKE="$WORK/lake"
MODEL="$WORK/model100m"
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1
SERVER_PID=""
SAMPLER_PID=""

cleanup() {
    if [[ -n "$SAMPLER_PID" ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

log() { printf '[gpu-check] %s\n' "$*"; }

# phase NAME CMD...: run CMD with stdout in $WORK/NAME.json, stderr in $WORK/NAME.log; record time and peak memory.
phase() {
    local name=$1
    shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$WORK/mem-$name.txt" 2>/dev/null &
    SAMPLER_PID=$!
    local t0 t1
    t0=$(date +%s.%N)
    if ! "$@" >"$WORK/$name.json" 2>"$WORK/$name.log"; then
        log "phase $name FAILED; last lines of $WORK/$name.log:"
        tail -n 30 "$WORK/$name.log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    local peak
    peak=$(sort -n "$WORK/mem-$name.txt" | tail -n 1)
    printf '%s %s %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "${peak:-0}" >>"$WORK/phases.txt"
    log "$name: $(echo "$t1 - $t0" | bc | cut -c1-6) s, peak GPU memory ${peak:-?} MiB"
}

command -v nvidia-smi >/dev/null || { log "no nvidia-smi: this script needs an NVIDIA GPU"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# 1. The gpu extra.
if [[ "${SKIP_INSTALL:-0}" != 1 ]] && ! "$PY" -c "import vllm, deepspeed" 2>/dev/null; then
    WHEELS=${WHEELS:-wheels}
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        log "installing .[gpu] from local wheels in $WHEELS"
        "$PY" -m pip install --no-index --find-links "$WHEELS" -e ".[gpu]"
    else
        log "installing .[gpu] from the package index"
        "$PY" -m pip install -c constraints.txt -e ".[gpu]"
    fi
fi
"$PY" -c "import torch, vllm, deepspeed, trl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'vllm', vllm.__version__, 'deepspeed', deepspeed.__version__, 'trl', trl.__version__)"
CLI=("$PY" -m conf_profile.cli)

# 2. A small week through Stage 1 (CPU, lexicon teachers).
"${CLI[@]}" simulate --lake "$LAKE" --users "$USERS" --weeks 1 --json >"$WORK/simulate.json"
for cmd in validate documents label aggregate; do
    "${CLI[@]}" "$cmd" --lake "$LAKE" --json >"$WORK/$cmd.json"
done
IV=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['interval'])" "$WORK/aggregate.json")
log "Stage 1 done for $IV"

# 3. The ~95 M-parameter Qwen3 student/teacher, built locally.
phase build "$PY" - "$LAKE" "$IV" "$MODEL" <<'PYEOF'
import json, sys
from pathlib import Path
from conf_profile.intervals import Interval
from conf_profile.storage import Lake
from conf_profile.train import student
from conf_profile.train.data import SYSTEM_PROMPT, load_distill
lake, iv, out = Lake(sys.argv[1]), Interval.parse(sys.argv[2]), Path(sys.argv[3])
rows = load_distill(lake, iv)[0].to_pylist()
texts = [r["document"] for r in rows] + [r["target"] for r in rows]
texts += ["system\nuser\nassistant\n" + SYSTEM_PROMPT] * len(rows)
student.build_preset("gpu100m", texts, out)
model, _ = student.load(out)
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "path": str(out)}))
PYEOF
log "model: $(cat "$WORK/build.json")"

cat >"$WORK/teachers.yaml" <<YAML
data_dir: $WORK
labels:
  shards: 1
  teachers:
    - {name: gpu_vllm, backend: vllm, model: $MODEL, max_tokens: 256, engine_kwargs: {gpu_memory_utilization: 0.3}}
    - {name: gpu_openai, backend: openai, model: $MODEL, base_url: "http://127.0.0.1:$PORT/v1", max_tokens: 256,
       max_concurrency: 64}
YAML

# 4a. vLLM offline teacher.
phase teacher_vllm "${CLI[@]}" label --lake "$LAKE" --config "$WORK/teachers.yaml" --teacher gpu_vllm --json

# 4b. The same model behind an OpenAI-compatible server.
"$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name "$MODEL" --host 127.0.0.1 \
    --port "$PORT" --gpu-memory-utilization 0.3 >"$WORK/vllm-serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then log "vllm serve exited"; tail -n 30 "$WORK/vllm-serve.log" >&2; exit 1; fi
    sleep 2
done
export OPENAI_API_KEY=${OPENAI_API_KEY:-none}
phase teacher_openai \
    "${CLI[@]}" label --lake "$LAKE" --config "$WORK/teachers.yaml" --teacher gpu_openai --json
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# 5-7. Training and evaluation of the 95 M model (budgeted SFT, short GRPO).
cat >"$WORK/train.yaml" <<YAML
data_dir: $WORK
train:
  student: $MODEL
  sft: {budget_examples: 4000, min_steps: 50, batch_size: 16, lr: 0.0005, val_every: 100, patience: 2}
  rl: {steps: 8, prompts_per_step: 4, num_generations: 8, val_every: 4}
  eval: {batch_size: 128}
YAML
phase sft accelerate launch --config_file configs/accelerate/zero2.yaml --num_processes 1 \
    -m conf_profile.cli train sft --interval "$IV" --lake "$LAKE" --config "$WORK/train.yaml" --no-resume --json
phase rl accelerate launch --config_file configs/accelerate/single_gpu.yaml --num_processes 1 \
    -m conf_profile.cli train rl --interval "$IV" --lake "$LAKE" --config "$WORK/train.yaml" --json
phase eval_sft "${CLI[@]}" evaluate --model sft --interval "$IV" --lake "$LAKE" --config "$WORK/train.yaml" --json
phase eval_rl "${CLI[@]}" evaluate --model rl --interval "$IV" --lake "$LAKE" --config "$WORK/train.yaml" \
    --samples 4 --json

# Summary: tokens/s per phase (tokens counted with the model's tokenizer) and peak memory.
"$PY" - "$WORK" "$LAKE" "$IV" "$MODEL" <<'PYEOF'
import json, sys
from pathlib import Path
import pyarrow.dataset as ds
from transformers import AutoTokenizer
work, lake, iv, model = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tok = AutoTokenizer.from_pretrained(model)
phases = {n: (float(t), float(m)) for n, t, m in (l.split() for l in (work / "phases.txt").read_text().splitlines())}
def load(name):
    try:
        return json.loads((work / f"{name}.json").read_text())
    except Exception:  # noqa: BLE001
        return {}
out = {}
for teacher in ("gpu_vllm", "gpu_openai"):
    try:
        files = sorted(p for p in Path(lake).rglob("*.parquet") if f"/teachers/{teacher}/" in str(p))
        raw = [r for f in files for r in ds.dataset(f).to_table(columns=["raw_output"]).column(0).to_pylist() if r]
        n_tok = sum(len(tok(r, add_special_tokens=False)["input_ids"]) for r in raw[::8]) * 8  # 1 in 8 answers
    except Exception as exc:  # noqa: BLE001 - the count is a nicety; the phase timings are the check
        print(f"token count of {teacher} failed: {exc}", file=sys.stderr)
        n_tok = 0
    secs = phases.get(f"teacher_{teacher.split('_')[1]}", (0, 0))[0]
    out[teacher] = {"seconds": secs, "output_tokens_per_s": round(n_tok / secs) if secs else None,
                    "peak_mib": phases.get(f"teacher_{teacher.split('_')[1]}", (0, 0))[1]}
sft, rl = load("sft"), load("rl")
if sft:
    ex = sft.get("steps", 0) * 16
    out["sft"] = {"steps": sft.get("steps"), "best_step": sft.get("best_step"), "train_runtime_s": sft.get("train_runtime_s"),
                  "examples_per_s": round(ex / sft["train_runtime_s"], 1) if sft.get("train_runtime_s") else None,
                  "peak_mib": phases["sft"][1], "val_score": sft.get("val_score")}
if rl:
    out["rl"] = {"steps": rl.get("steps"), "seconds_per_step": round(rl["train_runtime_s"] / max(1, rl["steps"]), 2),
                 "use_vllm": rl.get("use_vllm"), "peak_mib": phases["rl"][1]}
for stage in ("sft", "rl"):
    e = load(f"eval_{stage}")
    if e:
        row = e["rows"][0]
        out[f"eval_{stage}"] = {"f1": row["f1"], "ece": row["ece"], "valid_rate": row.get("valid_rate"),
                                "users_per_s": round(e["eval_users"] / e["generate_s"], 1) if e.get("generate_s") else None,
                                "peak_mib": phases[f"eval_{stage}"][1], "sampling": row.get("sampling")}
print(json.dumps(out, indent=2))
(work / "summary.json").write_text(json.dumps(out, indent=2))
PYEOF
log "all phases passed; details under $WORK"
