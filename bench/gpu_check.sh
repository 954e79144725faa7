#!/usr/bin/env bash
# bench/gpu_check.sh: pyrovae's whole GPU check, in one call of the `device` tool (~8 minutes).
#
# It installs the carried wheels, prints the GPU, driver, torch and Pyro versions, runs the
# CUDA tests (pytest -m cuda), bench/train_speed.py --device cuda, the main job on CUDA
# (configs/mnist.toml: 25 epochs, IS K = 100), IS K = 5000 and AIS at its default budget
# (S = 16, T = 500) on all 10,000 test images, and bench/log_likelihood_speed.py, each with
# its wall time, under a time guard: each step gets at most its own limit and what is left of
# the budget (--budget, default 450 s), a step that runs out is stopped and recorded as timed
# out, and the results are packed whatever happens. Everything lands in $OUT (at most 5 files:
# what the device tool brings back):
#
#   gpu_check.log            everything printed
#   summary.json             versions, each step's status and wall time, the parsed results
#   train_speed.json         bench/train_speed.py's table
#   results.tar.gz           the main job's run directory (config, metrics, checkpoint,
#                            picture: it resumes and evaluates elsewhere) and every raw result
#   samples_reconstructions.png   the main job's picture
#
# 1. Prepare, here on the CPU machine (no device time), from the repository's root:
#
#        bench/gpu_check.sh --prepare
#
#    writes .gpu/ (ignored through .git/info/exclude, ~12 MB): the wheels the device machine
#    lacks (pyro-ppl, pyro-api, tomli-w, at the versions installed here, built with
#    `pip wheel NAME==VERSION --no-deps -w .gpu/wheels`) and MNIST's four IDX files, gzipped
#    (from $PYROVAE_DATA). The device call sends the session's checkout: prepare there.
#
# 2. Run: one device call that carries .gpu:
#
#        run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=540)
#
# 3. Dry run on a CPU (tiny sizes, a few minutes; the CUDA tests are skipped there):
#
#        OUT=/tmp/gpu_check PYTHON=.venv/bin/python bench/gpu_check.sh --device cpu --small
#
# Options: --device cuda|cpu (default cuda), --small (tiny sizes), --budget SECONDS (default
# 450), --out DIR (default $OUT), --prepare. Environment: PYTHON (default python3),
# PYROVAE_DATA (used when .gpu/mnist is absent). Needs bash 5 (EPOCHSECONDS, EPOCHREALTIME) and
# coreutils' timeout.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
DEVICE=cuda
SMALL=0
BUDGET=450
OUT_DIR=${OUT:-}
PREPARE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --small) SMALL=1; shift ;;
        --budget) BUDGET=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --prepare) PREPARE=1; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print substr($0, 3)}' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$REPO" || exit 2

prepare() {
    local exclude wheels=.gpu/wheels mnist=.gpu/mnist data=${PYROVAE_DATA:-}
    exclude=$(git rev-parse --git-path info/exclude) || exit 2
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
    rm -rf .gpu && mkdir -p "$wheels" "$mnist" || exit 2
    local specs
    specs=$("$PY" -c 'from importlib.metadata import version as v
print(" ".join(f"{n}=={v(n)}" for n in ("pyro-ppl", "pyro-api", "tomli-w")))') || exit 2
    # shellcheck disable=SC2086
    "$PY" -m pip wheel -q --no-deps -w "$wheels" $specs || exit 2
    [ -n "$data" ] || { echo "gpu_check.sh: set PYROVAE_DATA to the folder holding MNIST/raw" >&2; exit 2; }
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
             t10k-labels-idx1-ubyte; do
        gzip -c "$data/MNIST/raw/$f" >"$mnist/$f.gz" || exit 2
    done
    echo "prepared .gpu ($(du -sh .gpu | cut -f1)): $specs, MNIST; carry it: carry=[\".gpu\"]"
}
if [ "$PREPARE" = 1 ]; then prepare; exit 0; fi

[ -n "$OUT_DIR" ] || { echo "gpu_check.sh: set OUT or give --out DIR" >&2; exit 2; }
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
STEPS_FILE=$WORK/steps.jsonl
START=$EPOCHSECONDS
DEADLINE=$((START + BUDGET))
exec > >(tee -a "$OUT_DIR/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYROVAE_OFFLINE=1
echo "gpu_check.sh: device $DEVICE, small $SMALL, budget ${BUDGET} s, $(date -u +%FT%TZ)," \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), work $WORK"

# the carried wheels and data
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .gpu/wheels/*.whl || echo "gpu_check.sh: the wheels did not install"
    export PYTHONPATH=$REPO:$WORK/site
else
    export PYTHONPATH=$REPO
fi
if compgen -G ".gpu/mnist/*.gz" >/dev/null; then
    mkdir -p "$WORK/data/MNIST/raw"
    for f in .gpu/mnist/*.gz; do gunzip -c "$f" >"$WORK/data/MNIST/raw/$(basename "$f" .gz)"; done
    export PYROVAE_DATA=$WORK/data
fi

# step NAME LIMIT_S COMMAND...: run COMMAND under the time guard, record its status and time
step() {
    local name=$1 limit=$2 left status rc began wall
    shift 2
    left=$((DEADLINE - EPOCHSECONDS))
    if [ "$left" -lt 20 ]; then
        echo "=== $name: skipped (${left} s of the budget left)"
        printf '{"step": "%s", "status": "skipped", "rc": null, "wall_s": null, "limit_s": 0}\n' \
            "$name" >>"$STEPS_FILE"
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "=== $name (at most ${limit} s): $*"
    began=$EPOCHREALTIME
    timeout --signal=INT --kill-after=15 "$limit" "$@"
    rc=$?
    wall=$(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $began}")
    case $rc in
        0) status=ok ;;
        124|137) status="timed out" ;;
        *) status=failed ;;
    esac
    echo "=== $name: $status (exit $rc) in $wall s"
    printf '{"step": "%s", "status": "%s", "rc": %d, "wall_s": %s, "limit_s": %d}\n' \
        "$name" "$status" "$rc" "$wall" "$limit" >>"$STEPS_FILE"
}

versions() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    fi
    "$PY" - "$WORK/versions.json" <<'EOF'
import json, platform, subprocess, sys
import pyro, torch
import pyrovae

info = {"python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "pyro": pyro.__version__,
        "pyrovae": pyrovae.__file__, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, multiprocessors=props.multi_processor_count,
                memory_gib=round(props.total_memory / 2**30, 1),
                cudnn=torch.backends.cudnn.version(),
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    try:
        info["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["driver"] = None
print(json.dumps(info, indent=2))
json.dump(info, open(sys.argv[1], "w"), indent=2)
EOF
}

# the sizes: the real ones, or tiny ones for a dry run
RUN=$WORK/run
if [ "$SMALL" = 1 ]; then
    TRAIN_SPEED=(--threads 1 --hidden 16 --batch-size 32 --train-limit 128 --test-limit 64
                 --steps 2 --repeats 1 --warmup 1 --pool 2 --epochs 1)
    MAIN_JOB=(--epochs 1 --set data.train_limit=512 --set data.test_limit=256
              --set eval.num_samples=10)
    IS_BIG=(--num-samples 20)
    AIS=(--num-samples 2 --num-steps 5 --limit 16)
    LL_SPEED=(--num-examples 20 --num-samples 10 --repeats 1)
else
    TRAIN_SPEED=(--repeats 10 --epochs 2)
    MAIN_JOB=()
    IS_BIG=(--num-samples 5000)
    AIS=()
    LL_SPEED=(--num-examples 2000 --num-samples 1000 --repeats 3)
fi

export PY WORK
export -f versions
step versions 60 bash -c versions
step cuda-tests 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests \
    --junitxml "$WORK/cuda_tests.xml"
step train-speed 100 "$PY" bench/train_speed.py --device "$DEVICE" "${TRAIN_SPEED[@]}" \
    --json "$WORK/train_speed.json"
step main-job 180 "$PY" -m pyrovae train --config configs/mnist.toml --device "$DEVICE" \
    --out "$RUN" "${MAIN_JOB[@]}"
step is-k5000 90 bash -c '"$0" -m pyrovae evaluate "$1" --device "$2" --json "${@:4}" >"$3"' \
    "$PY" "$RUN" "$DEVICE" "$WORK/evaluate_is.json" "${IS_BIG[@]}"
step ais-default 150 bash -c '"$0" -m pyrovae evaluate "$1" --method ais --device "$2" --json "${@:4}" >"$3"' \
    "$PY" "$RUN" "$DEVICE" "$WORK/evaluate_ais.json" "${AIS[@]}"
step log-likelihood-speed 60 "$PY" bench/log_likelihood_speed.py --device "$DEVICE" \
    "${LL_SPEED[@]}" --json "$WORK/log_likelihood_speed.json"

# pack: the summary, the table, the run directory and raw results, the picture
"$PY" - "$WORK" "$OUT_DIR/summary.json" "$DEVICE" "$SMALL" <<'EOF'
import json, sys
from pathlib import Path

work, out, device, small = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def read(name):
    path = work / name
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return {"unreadable": path.read_text()[-2000:]}


summary = {"device": device, "small": small == "1", "versions": read("versions.json"),
           "steps": [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]}
speed = read("train_speed.json")
if speed and "rows" in speed:
    summary["train_speed"] = [
        {k: row.get(k) for k in ("contender", "ms_per_step", "ratio_wall", "ratio_paired",
                                 "epoch_s", "test_elbo", "syncs_per_step")}
        for row in speed["rows"]]
metrics = work / "run" / "metrics.jsonl"
if metrics.is_file():
    summary["main_job_metrics"] = [json.loads(line) for line in metrics.read_text().splitlines()]
summary["evaluate_is"] = read("evaluate_is.json")
summary["evaluate_ais"] = read("evaluate_ais.json")
summary["log_likelihood_speed"] = read("log_likelihood_speed.json")
out.write_text(json.dumps(summary, indent=2))
print(json.dumps(summary["steps"], indent=1))
EOF
[ -f "$WORK/train_speed.json" ] && cp "$WORK/train_speed.json" "$OUT_DIR/"
[ -f "$RUN/samples_reconstructions.png" ] && cp "$RUN/samples_reconstructions.png" "$OUT_DIR/"
tar -czf "$OUT_DIR/results.tar.gz" -C "$WORK" --exclude=site --exclude=data .
echo "gpu_check.sh: done in $((EPOCHSECONDS - START)) s; $OUT_DIR holds: $(ls "$OUT_DIR" | tr '\n' ' ')"
