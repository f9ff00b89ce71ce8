#!/usr/bin/env bash
# The GPU runs of issue 17 (DCHN speed at the convolution floor with captured relaxations, the
# published codes on the same GPU) and of issue 3 before it (DCHN accuracy), and issue 11's binary
# neurons at the paper's length (100 epochs), as ONE resumable command. (Was scripts/gpu_issue3.sh.)
#
# Every step runs once: a finished step leaves runs/gpu/done/STEP and is skipped afterwards; a
# training resumes from its last epoch's checkpoint (the epoch in progress when a call ends is
# lost, nothing else). A call starts steps while its budget lasts (BUDGET_S, default 540 s: the
# device tool allows 600 s per command), stops a running step at the budget, packs the state and
# exits; call it again until it prints "all done". A step that fails is recorded in
# runs/gpu/failed/STEP (with its log) and skipped by later calls (RETRY=1 tries it again).
#
# The device tool sends the working tree, not runs/ nor the data, and keeps nothing between
# machines, so the state travels both ways:
#   here:    bash scripts/gpu_runs.sh prepare          # data the pending steps need -> .devdata/,
#                                                      # the published codes -> benchmarks/anchors/published/
#   device:  run(command="bash scripts/gpu_runs.sh", carry=[".devdata", "runs/gpu",
#                "benchmarks/anchors/published"], timeout_s=600)
#   here:    bash scripts/gpu_runs.sh unpack FILES_AT   # the returned state -> runs/gpu/
#            bash scripts/gpu_runs.sh status            # done / failed / left, and the figures so far
# On the device $OUT is set: the state goes there as state.tgz.part-NN (15 MiB pieces, the tool's
# limit is 16 MiB a file and 8 files) with the call's log. Without $OUT (a machine of your own),
# state simply stays in runs/gpu.
#   DRY=1 bash scripts/gpu_runs.sh   # print the command of every pending step, run nothing
#
# Time estimates below are guesses for one H100 (nothing here has run on a GPU yet); the whole
# list is several hours, far more than one session's 30 minutes of device time: the order puts
# the cheapest and most informative first, and every later session continues where it stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
STATE=runs/gpu
BUDGET_S=${BUDGET_S:-540}
RESERVE_S=${RESERVE_S:-30}     # kept for packing the state at the end of a call
MIN_STEP_S=${MIN_STEP_S:-60}   # no step is started with less than this left
START=$(date +%s)
[ -d "$ROOT/.devdata" ] && export EQPROP_DATA="$ROOT/.devdata"

# name | data it needs | rough time on one H100 (a guess) -- in the order they run
STEPS=(
  "env|-|10 s: GPU, driver, torch"
  "capture_check|-|1 min: captured phases equal eager on CUDA (float64), captured vs eager DCHN step"
  "dchn_speed|-|3 min: autograd, float32, float32_graph, bf16, fastest, floor (one process)"
  "anchors_gpu|-|6 min: energy-based-learning DCHN and Laborieux 2021 conv net beside ours, interleaved"
  "fmnist_bf16|fashion-mnist|5 min: 30 epochs, DCHN 32-64, centered EP 40/15, bf16 relaxations, captured"
  "fmnist_fp32|fashion-mnist|6 min: the same in float32, same seed"
  "mnist|mnist|5 min: 30 epochs, same DCHN and rule"
  "binary_wa|mnist|10 min: issue 11, 784-4096-100 binary weights and 0/1 neurons, the paper's settings, 100 epochs"
  "binary_wa_fp|mnist|10 min: issue 11, its full-precision twin with the same layers, 100 epochs"
  "binary_wa_gain|mnist|10 min: issue 11, the binary net with input gain 1.5 and re-chosen thresholds, 100 epochs"
  "cifar10_ep|cifar10-jpeg|30-50 min: 100 epochs, DCHN 128-256-512-512, centered EP 60/20 async, bf16, captured"
  "cifar10_bptt|cifar10-jpeg|60-100 min: 100 epochs, the same net by truncated BPTT (last 20 of 80 sweeps)"
  "smnist_rhel|mnist|15-30 min: 10 epochs, HSSM on 784-step MNIST sequences, RHEL"
  "smnist_bptt|mnist|15-30 min: the same by BPTT"
  "grid|fashion-mnist|30-60 min: the nine-rule grid on Fashion-MNIST (784-500-10, 3 seeds), captured"
  "grid_mnist_2h|mnist|30-90 min: issue 10, the MNIST 784-500-500-10 grid's rows left on CPU (clipped BPTT, RBP), 3 seeds"
)

train() {  # config, run name, overrides...
  local cfg=$1 name=$2; shift 2
  echo "$PY -m eqprop train $cfg run.device=cuda run.out=$STATE/$name rule.capture=true $*"
}

cmd_of() {
  case $1 in
    env) echo "{ nvidia-smi || true; $PY -c 'import torch, sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", torch.backends.cudnn.version()); print(torch.cuda.get_device_name(0))'; } > $STATE/env.txt 2>&1; cat $STATE/env.txt" ;;
    capture_check) echo "$PY benchmarks/capture_check.py --device cuda | tee $STATE/capture_check.jsonl" ;;
    dchn_speed) echo "$PY benchmarks/dchn_speed.py --device cuda | tee $STATE/dchn_speed.jsonl" ;;
    anchors_gpu) echo "$PY benchmarks/anchors/anchors_gpu.py --device cuda | tee $STATE/anchors_gpu.jsonl" ;;
    fmnist_bf16) train configs/fashion_mnist_dchn_ep.yaml fmnist_bf16 ;;
    fmnist_fp32) train configs/fashion_mnist_dchn_ep.yaml fmnist_fp32 rule.relax_dtype=null ;;
    mnist) train configs/mnist_dchn_ep.yaml mnist ;;
    binary_wa) echo "$PY -m eqprop train configs/mnist_mlp4096_binary_wa.yaml run.device=cuda run.epochs=100 run.out=$STATE/binary_wa" ;;
    binary_wa_gain) echo "$PY -m eqprop train configs/mnist_mlp4096_binary_wa_gain.yaml run.device=cuda run.epochs=100 run.out=$STATE/binary_wa_gain" ;;
    binary_wa_fp) echo "$PY -m eqprop train configs/mnist_mlp4096x10_fp.yaml run.device=cuda run.epochs=100 run.out=$STATE/binary_wa_fp" ;;
    cifar10_ep) train configs/cifar10_dchn_ep.yaml cifar10_ep ;;
    cifar10_bptt) train configs/cifar10_dchn_bptt.yaml cifar10_bptt ;;
    smnist_rhel) echo "$PY -m eqprop train configs/smnist_hssm_rhel.yaml run.device=cuda run.out=$STATE/smnist_rhel" ;;
    smnist_bptt) echo "$PY -m eqprop train configs/smnist_hssm_bptt.yaml run.device=cuda run.out=$STATE/smnist_bptt" ;;
    grid) echo "$PY -m eqprop compare configs/compare_fashion_mnist.yaml out=$STATE/grid run.device=cuda rule.capture=true" ;;
    grid_mnist_2h) echo "$PY -m eqprop compare configs/compare_mnist_tuned_full_2h.yaml out=$STATE/grid_mnist_2h run.device=cuda 'only=[bptt-clip2,rbp]'" ;;
    *) echo "unknown step $1" >&2; return 1 ;;
  esac
}

field() { local IFS='|'; read -r -a f <<< "$1"; echo "${f[$2]}"; }
left() { echo $(( BUDGET_S - RESERVE_S - ($(date +%s) - START) )); }
has_data() {  # dataset name -> 0 if a loader will find it
  case $1 in
    -) return 0 ;;
    fashion-mnist) [ -d "${EQPROP_DATA:-/nonexistent}/fashion-mnist" ] || [ -d /usr/share/datasets/fashion-mnist ] ;;
    *) [ -d "${EQPROP_DATA:-/work/shared/data}/$1" ] ;;
  esac
}
pending() {  # the steps neither done nor (unless RETRY=1) failed
  for s in "${STEPS[@]}"; do
    local n; n=$(field "$s" 0)
    [ -e "$STATE/done/$n" ] && continue
    [ -e "$STATE/failed/$n" ] && [ "${RETRY:-0}" != 1 ] && continue
    echo "$s"
  done
}

pack() {  # finished runs drop their checkpoints; the state goes to $OUT in 15 MiB pieces
  [ -d "$STATE" ] || return 0
  $PY - "$STATE" <<'EOF' || true
import json, sys, pathlib, yaml
for ck in pathlib.Path(sys.argv[1]).rglob("checkpoint.pt"):
    s, c = ck.parent / "summary.json", ck.parent / "config.yaml"
    try:
        if s.exists() and c.exists() and json.loads(s.read_text())["epochs"] >= yaml.safe_load(c.read_text())["run"]["epochs"]:
            ck.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass
EOF
  if [ -n "${OUT:-}" ]; then
    tar -C runs -czf - gpu | split -b 15m -d - "$OUT/state.tgz.part-"
    if [ "$(ls "$OUT"/state.tgz.part-* | wc -l)" -gt 4 ]; then  # the tool returns 8 files, 64 MiB in all
      echo "[gpu_runs] WARNING: the state is over 60 MiB and will not all come back; delete the checkpoint.pt of a failed run under $STATE"
    fi
    [ -f "$LOG" ] && cp "$LOG" "$OUT/gpu_runs.log"
    echo "[gpu_runs] state packed into $OUT ($(du -sh "$OUT" | cut -f1)): unpack it here with  bash scripts/gpu_runs.sh unpack FILES_AT"
  fi
}

status() {
  for s in "${STEPS[@]}"; do
    local n st; n=$(field "$s" 0)
    if [ -e "$STATE/done/$n" ]; then st=done; elif [ -e "$STATE/failed/$n" ]; then st=FAILED; else st=left; fi
    printf '%-14s %-7s %s\n' "$n" "$st" "$(field "$s" 2)"
  done
  $PY - "$STATE" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
for m in sorted(root.rglob("metrics.jsonl")):
    rows = [json.loads(line) for line in m.read_text().splitlines() if line.strip()]
    if not rows:
        continue
    last, acc = rows[-1], [r.get("test_acc") for r in rows if r.get("test_acc") is not None]
    t = sum(r.get("epoch_time", 0) for r in rows)
    print(f"{str(m.parent.relative_to(root)):40s} epoch {last['epoch']:>3}  test acc {100 * (last.get('test_acc') or 0):6.2f}%  "
          f"best {100 * max(acc or [0]):6.2f}%  train+eval time {t:8.0f} s  ({t / len(rows):.1f} s/epoch)")
for j in ("capture_check.jsonl", "dchn_speed.jsonl", "anchors_gpu.jsonl"):
    p = root / j
    if p.exists():
        print(f"--- {j}")
        for line in p.read_text().splitlines():
            if line.startswith("{") and '"progress"' not in line:
                print(line)
EOF
}

case ${1:-run} in
  prepare)
    # here (no GPU): the data of the pending steps into .devdata/ (the loaders' standard layout),
    # as much as fits the device tool's 64 MiB with the repository and runs/gpu; the published codes.
    SRC=${DATA_SRC:-${EQPROP_DATA:-/work/shared/data}}
    FASHION=${FASHION_SRC:-/usr/share/datasets/fashion-mnist}
    [ -d benchmarks/anchors/published/energy-based-learning ] || bash benchmarks/anchors/fetch.sh \
      || echo "[gpu_runs] benchmarks/anchors/fetch.sh failed: copy /work/main/benchmarks/anchors/published here"
    rm -rf .devdata && mkdir -p .devdata
    mib() { du -sm "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
    used=$(( $(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1) + $(mib "$STATE") + $(mib benchmarks/anchors/published) ))
    limit=${CARRY_MIB:-60}
    while read -r s; do
      d=$(field "$s" 1)
      [ "$d" = - ] || [ -d ".devdata/$d" ] && continue
      src=$SRC/$d; [ "$d" = fashion-mnist ] && src=$FASHION
      size=$(mib "$src")
      if [ $(( used + size )) -gt "$limit" ]; then
        echo "[gpu_runs] $d ($size MiB) does not fit this call's carry ($used of $limit MiB used): a later call takes it"
        break  # keep the order: later steps wait for the earlier ones' data
      fi
      cp -r "$src" ".devdata/$d" && used=$(( used + size ))
      echo "[gpu_runs] .devdata/$d ($size MiB)"
    done < <(pending)
    echo "[gpu_runs] carry ~$used MiB: run(command=\"bash scripts/gpu_runs.sh\", carry=[\".devdata\", \"runs/gpu\", \"benchmarks/anchors/published\"], timeout_s=600)"
    exit 0 ;;
  unpack)
    dir=${2:?usage: gpu_runs.sh unpack FILES_AT}
    ls "$dir"/state.tgz.part-* >/dev/null 2>&1 || { echo "no state.tgz.part-* in $dir"; exit 1; }
    mkdir -p runs && cat "$dir"/state.tgz.part-* | tar -C runs -xzf - && echo "[gpu_runs] state restored into $STATE"
    [ -f "$dir/gpu_runs.log" ] && cp "$dir/gpu_runs.log" "$STATE/last_call.log"
    status; exit 0 ;;
  status) status; exit 0 ;;
  pack) LOG=/dev/null; pack; exit 0 ;;  # what a call does at its end (e.g. to check the pieces)
  run) ;;
  *) echo "usage: gpu_runs.sh [run|prepare|unpack FILES_AT|status]  (DRY=1: print the commands)"; exit 2 ;;
esac

if [ "${DRY:-0}" = 1 ]; then
  while read -r s; do
    n=$(field "$s" 0); printf '# %s (%s; data: %s)\n%s\n' "$n" "$(field "$s" 2)" "$(field "$s" 1)" "$(cmd_of "$n")"
  done < <(pending)
  echo "# then: pack the state into \$OUT (when set)"
  exit 0
fi
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "[gpu_runs] no CUDA device: these runs are for a GPU (DRY=1 prints the commands)"; exit 1
fi
mkdir -p "$STATE/done" "$STATE/failed" "$STATE/logs"
LOG=$STATE/logs/call-$(date +%Y%m%d-%H%M%S).log
trap pack EXIT
exec > >(tee -a "$LOG") 2>&1
stopped=0
while read -r s; do
  n=$(field "$s" 0); d=$(field "$s" 1)
  if ! has_data "$d"; then
    echo "[gpu_runs] $n: dataset $d not here (not carried this call; run prepare): skipped for now"; continue
  fi
  t=$(left)
  if [ "$t" -lt "$MIN_STEP_S" ]; then echo "[gpu_runs] ${t}s left of this call's budget: stopping before $n"; stopped=1; break; fi
  cmd=$(cmd_of "$n")
  echo "[gpu_runs] $(date -u +%H:%M:%S) $n (${t}s left; $(field "$s" 2))"
  echo "+ $cmd"
  timeout --signal=TERM --kill-after=15 "$t" bash -o pipefail -c "$cmd" </dev/null 2>&1 | tee "$STATE/logs/$n.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then
    date -u +%FT%TZ > "$STATE/done/$n"; rm -f "$STATE/failed/$n"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "[gpu_runs] $n stopped at the budget: it resumes in the next call"; stopped=1; break
  else
    cp "$STATE/logs/$n.log" "$STATE/failed/$n"; echo "[gpu_runs] $n FAILED (rc $rc; log in $STATE/failed/$n)"
  fi
done < <(pending)
if [ "$stopped" = 0 ] && [ -z "$(pending)" ]; then
  if ls "$STATE/failed/"* >/dev/null 2>&1; then
    echo "[gpu_runs] every step ran; failed: $(ls "$STATE/failed" | tr '\n' ' ')(RETRY=1 runs them again)"
  else
    echo "all done"
  fi
elif [ "$stopped" = 0 ]; then
  echo "[gpu_runs] steps left whose data was not carried: run prepare here and call again"
fi
