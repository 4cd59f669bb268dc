#!/usr/bin/env bash
# The paper's main grid on one machine with several GPUs: IMP, LRR and LRR with BatchNorm
# rewinding, 3 seeds, for the Table 1 setups. Independent runs, one per GPU at a time, or one
# torchrun per run over GPUS_PER_RUN GPUs.
#
#   examples/grid_local.sh                        # every setup: cifar10 cifar100 tiny-imagenet vgg16
#   examples/grid_local.sh cifar10                # one setup: 9 runs
#   DRY_RUN=1 examples/grid_local.sh cifar10      # print the commands, run nothing
#   GPUS=0,1,2,3 GPUS_PER_RUN=2 examples/grid_local.sh cifar100   # 2 runs at a time, 2 GPUs each
#
# Settings (environment): GPUS (default: every GPU nvidia-smi lists), GPUS_PER_RUN (1),
# SEEDS ("0 1 2"), LEVELS (20), WORK (runs/paper), DATA (data), SIGNSCOPE (signscope).
#
# Runs go to $WORK/<setup>/<name>-seed<N>, the folders examples/fig*.py use, so the figure
# scripts find them trained. Two waves: first level 0 of every seed's IMP run, which writes the
# init and the rewind point; then all runs, LRR starting from the IMP run's init and rewind
# point (--init-from), since the paper gives both methods the same rewind point (A.3). Every
# command carries --resume: running the script again continues killed runs and skips finished
# ones. Each run logs to <run folder>.log. Paths must not contain spaces.
#
# slurm_grid.sh sources this file for grid_jobs and run_job; run directly, it calls main.

set -euo pipefail

SEEDS=${SEEDS:-"0 1 2"}
LEVELS=${LEVELS:-20}
WORK=${WORK:-runs/paper}
DATA=${DATA:-data}
SIGNSCOPE=${SIGNSCOPE:-signscope}
GPUS_PER_RUN=${GPUS_PER_RUN:-1}
ALL_SETUPS=(cifar10 cifar100 tiny-imagenet vgg16)

preset_of() {
    case $1 in
        cifar10) echo cifar10-resnet18 ;;
        cifar100) echo cifar100-resnet50 ;;
        tiny-imagenet) echo tinyimagenet-resnet50 ;;
        vgg16) echo cifar10-vgg16 ;;
        *) echo "unknown setup '$1'; choose from ${ALL_SETUPS[*]}" >&2; return 2 ;;
    esac
}

# grid_jobs WAVE SETUP...: the runs of a wave, one "SETUP SEED NAME" line each.
grid_jobs() {
    local wave=$1 setup seed name
    shift
    for setup in "$@"; do
        preset_of "$setup" >/dev/null
        for seed in $SEEDS; do
            if [[ $wave == 1 ]]; then
                echo "$setup $seed imp"
            else
                for name in imp lrr lrr+bn-rewind; do echo "$setup $seed $name"; done
            fi
        done
    done
}

# job_argv WAVE SETUP SEED NAME: the signscope arguments of one run, one per line.
job_argv() {
    local wave=$1 setup=$2 seed=$3 name=$4
    local dir=$WORK/$setup preset
    preset=$(preset_of "$setup")
    local -a argv=(train --preset "$preset" --data-root "$DATA" --seed "$seed"
                   --out "$dir/$name-seed$seed" --resume --quiet)
    case $name in
        imp) argv+=(--method imp) ;;
        lrr) argv+=(--method lrr --init-from "$dir/imp-seed$seed") ;;
        lrr+bn-rewind) argv+=(--method lrr --bn-rewind --init-from "$dir/imp-seed$seed") ;;
    esac
    # Wave 1 stops the IMP run after level 0; wave 2 extends it (--levels may grow on --resume).
    if [[ $wave == 1 ]]; then argv+=(--levels 1); else argv+=(--levels "$LEVELS"); fi
    printf '%s\n' "${argv[@]}"
}

# run_job WAVE SETUP SEED NAME [GPU_IDS]: one run on the given GPUs (default: those visible).
run_job() {
    local wave=$1 setup=$2 seed=$3 name=$4 gpus=${5:-}
    local out=$WORK/$setup/$name-seed$seed
    if [[ $wave == 1 && -f $out/level_000.safetensors ]]; then
        return 0  # level 0 is there: --levels 1 would refuse a run that wave 2 already extended
    fi
    local -a argv cmd=("$SIGNSCOPE")
    mapfile -t argv < <(job_argv "$wave" "$setup" "$seed" "$name")
    if ((GPUS_PER_RUN > 1)); then
        cmd=(torchrun --standalone --nproc_per_node "$GPUS_PER_RUN" -m signscope)
    fi
    if [[ -n ${DRY_RUN:-} ]]; then
        echo "${gpus:+CUDA_VISIBLE_DEVICES=$gpus }${cmd[*]} ${argv[*]}"
        return 0
    fi
    mkdir -p "$(dirname "$out")"
    echo "start  $setup $name seed $seed${gpus:+ on GPU $gpus}"
    if [[ -n $gpus ]]; then export CUDA_VISIBLE_DEVICES=$gpus; fi
    if "${cmd[@]}" "${argv[@]}" >>"$out.log" 2>&1; then
        echo "done   $setup $name seed $seed"
    else
        echo "failed $setup $name seed $seed: see $out.log" >&2
        return 1
    fi
}

# run_wave WAVE SETUP...: the wave's runs, each GPU group taking every slots-th run in turn.
run_wave() {
    local wave=$1
    shift
    local -a jobs pids=()
    mapfile -t jobs < <(grid_jobs "$wave" "$@")
    local slots=$((${#GPU_IDS[@]} / GPUS_PER_RUN)) s j failed=0
    if ((slots < 1)); then
        echo "GPUS_PER_RUN=$GPUS_PER_RUN but only ${#GPU_IDS[@]} GPUs (GPUS=$GPUS)" >&2
        return 2
    fi
    for ((s = 0; s < slots; s++)); do
        local group
        group=$(IFS=,; echo "${GPU_IDS[*]:s*GPUS_PER_RUN:GPUS_PER_RUN}")
        (
            rc=0
            for ((j = s; j < ${#jobs[@]}; j += slots)); do
                # shellcheck disable=SC2086  # "SETUP SEED NAME" splits into three arguments
                run_job "$wave" ${jobs[j]} "$group" || rc=1
            done
            exit $rc
        ) &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" || failed=1; done
    return $failed
}

main() {
    local -a setups=("$@")
    ((${#setups[@]})) || setups=("${ALL_SETUPS[@]}")
    local setup
    for setup in "${setups[@]}"; do preset_of "$setup" >/dev/null || return 2; done
    GPUS=${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, - || true)}
    GPUS=${GPUS:-0}
    IFS=, read -r -a GPU_IDS <<<"$GPUS"
    # Runs share the CPU cores: a default of one thread per core per run would oversubscribe.
    local runs=$((${#GPU_IDS[@]} / GPUS_PER_RUN)) per
    per=$(($(nproc) / (runs > 0 ? runs : 1)))
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((per > 0 ? per : 1))}
    run_wave 1 "${setups[@]}" || { echo "level 0 of some IMP runs failed; not starting the rest" >&2; return 1; }
    run_wave 2 "${setups[@]}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
