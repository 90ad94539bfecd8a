# Option parsing and stages shared by recipes/{gan2d,mnist,began}/run.sh, which source it after
# setting `verb` (the vawgan verb), `models` (run names under exp/; model i trains in stage i),
# `conf_of` (model -> config file; sees $suffix, "_full" with --full) and `sample_args`
# (what stage 4 writes). Not meant to be run on its own.
stage=0
stop_stage=100
suffix=""
device=auto
# The run.sh scripts cd to their own folder first, so $0's basename names the script.
usage() { sed -n '2,/^[^#]/{/^#/p}' "$(basename "$0")" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --full) suffix=_full; shift ;;
        --device) device=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
done

run_stage() {
    if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
        echo "=== stage $1: $2 ($(date -u +%H:%M:%S)) ==="
        return 0
    fi
    return 1
}

for i in "${!models[@]}"; do
    model=${models[$i]}
    if run_stage "$i" "train $model"; then
        resume=()
        [ -f "exp/$model/checkpoint.pt" ] && resume=(--resume)
        vawgan "$verb" train --config "$(conf_of "$model")" --out "exp/$model" --device "$device" "${resume[@]}"
    fi
done
runs=()
for model in "${models[@]}"; do runs+=(--run "exp/$model"); done
if run_stage 2 "evaluation"; then vawgan "$verb" evaluate "${runs[@]}" --device "$device"; fi
if run_stage 3 "plots"; then
    for model in "${models[@]}"; do vawgan "$verb" plot --run "exp/$model" --device "$device"; done
fi
if run_stage 4 "samples"; then
    for model in "${models[@]}"; do
        vawgan "$verb" sample --run "exp/$model" "${sample_args[@]}" --output "exp/$model/samples.$sample_ext" \
            --device "$device"
    done
fi
