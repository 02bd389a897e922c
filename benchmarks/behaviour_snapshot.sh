#!/usr/bin/env bash
# Behaviour snapshot for refactors: runs a fixed list of CLI commands and benchmarks on the shipped data and
# writes each one's output (and each model file fitted, with its creation stamps removed) to OUT.
# Run it before and after a change and diff the two folders:
#
#   bash benchmarks/behaviour_snapshot.sh /tmp/before      # on the old commit (a git worktree)
#   bash benchmarks/behaviour_snapshot.sh /tmp/after       # on the new one
#   diff -r /tmp/before /tmp/after
#
# Everything here is deterministic except bench_model_speed (timings: compare by eye, not by diff).
# Uses the checkout it lives in (PYTHONPATH) and PYTHON (default: .venv/bin/python of that checkout).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: behaviour_snapshot.sh OUT_DIR}
PY=${PYTHON:-$ROOT/.venv/bin/python}
PARSEC=${PARSEC:-$ROOT/../shared/data/armpm-parsec/xu3_cset_perfcpu_PARSEC_eMMC_big.data}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
export PYTHONPATH=$ROOT COLUMNS=160 NO_COLOR=1 TERM=dumb

ONLY=${ONLY:-}  # a regex: run only the entries whose name matches
run() {  # run NAME CMD...: stdout+stderr and the exit code, paths of this checkout / the temp dir normalised
    local name=$1; shift
    [[ -n $ONLY && ! $name =~ $ONLY ]] && return 0
    echo "== $name" >&2
    { "$@" 2>&1; echo "exit: $?"; } | sed -e "s#$WORK#WORK#g" -e "s#$ROOT#ROOT#g" >"$OUT/$name.txt"
}
pm() { "$PY" -m perfmodel "$@"; }
model_json() {  # the fitted model file without its creation stamps
    [ -f "$1" ] || return 0
    "$PY" - "$1" >"$OUT/$2.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items()
                if k not in ("created", "created_at", "sha256", "checksum", "fitted_at", "wall_s", "host")}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
json.dump(strip(d), sys.stdout, indent=1, sort_keys=True)
EOF
}

# --- CLI on shipped data
run fit-throughput pm fit datasets/reference --target throughput_fps --kind overhead-linear --cv lono \
    --terms throughput-stream-l1d --counts-from datasets/simulated-l2-2mib -o "$WORK/tp.json"
model_json "$WORK/tp.json" fit-throughput-model
run evaluate-throughput pm evaluate datasets/reference --target throughput_fps --cv lono
run evaluate-throughput-json pm evaluate datasets/reference --target throughput_fps --cv lofo --json
run fit-power pm fit "armpm:$PARSEC" --target power_w --cv lowo --sensor-lag 1 -o "$WORK/pw.json"
model_json "$WORK/pw.json" fit-power-model
run evaluate-power pm evaluate "armpm:$PARSEC" --target power_w --cv lowo --sensor-lag 1
run evaluate-power-auto pm evaluate "armpm:$PARSEC" --target power_w --cv lowo --sensor-lag 1 --features auto
run predict-validation pm predict --model trained/throughput_reference.json --dataset datasets/validation-networks \
    --counts-from datasets/simulated-l2-2mib
run predict-validation-json pm predict --model trained/throughput_reference.json \
    --dataset datasets/validation-networks --counts-from datasets/simulated-l2-2mib --json
run predict-reference-csv pm predict --model "$WORK/tp.json" --dataset datasets/reference \
    --counts-from datasets/simulated-l2-2mib --json
run predict-power pm predict --model trained/power_armpm_xu3_a15.json --sensor-lag 1 --dataset "armpm:$PARSEC"
run predict-refused pm predict --model trained/throughput_reference.json --dataset datasets/reference
run select pm select datasets/reference --min-fps 20 --min-top1 0.6 --objective throughput
run select-power pm select datasets/reference --max-power 3 --min-top1 0.6
run select-json pm select datasets/reference --min-fps 20 --min-top1 0.6 --objective throughput --json
run correlate pm correlate datasets/reference
run correlate-fps pm correlate datasets/reference --target throughput_fps
run report pm report datasets/reference datasets/traces/* -m trained/throughput_reference.json -o "$WORK/report"
if [ -f "$WORK/report/report.html" ]; then
    # the report's text without time stamps and embedded images
    sed -E -e 's#data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+#IMG#g' \
        -e 's#[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9:]+)?#TIME#g' \
        -e "s#$WORK#WORK#g" -e "s#$ROOT#ROOT#g" "$WORK/report/report.html" >"$OUT/report.html"
fi
run help-fit pm fit --help
run help-predict pm predict --help
run help-select pm select --help
run help-pipeline pm pipeline --help
run help-evaluate pm evaluate --help
run help-collect pm collect --help
run bad-dataset pm fit /nonexistent --target throughput_fps -o "$WORK/x.json"

# --- benchmarks
run bench-power "$PY" benchmarks/bench_power_model.py --quick
run bench-throughput "$PY" benchmarks/bench_throughput_model.py datasets/reference
run bench-quick-sample "$PY" benchmarks/bench_quick_sample.py --model trained/throughput_reference.json \
    $(for t in datasets/traces-2min/*/; do printf -- '--trace %s ' "${t%/}"; done)
run bench-model-speed-TIMED "$PY" benchmarks/bench_model_speed.py
echo "snapshot in $OUT" >&2
