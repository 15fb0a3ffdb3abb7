#!/usr/bin/env bash
# ToolTrain stage 2: GRPO of a RepoSearcher policy with verl 0.9.1 (recipe: reposearcher/grpo.yaml).
#
# Settings come from environment variables (defaults in brackets); anything after the script's name is
# passed to verl as extra Hydra overrides, e.g. `run_grpo.sh trainer.total_epochs=2`.
#
#   MODEL_PATH   the policy to train, normally the SFT checkpoint's huggingface/ directory
#                [Qwen/Qwen2.5-Coder-7B-Instruct; smoke: Qwen/Qwen2.5-0.5B-Instruct]
#   DATA_DIR     where `reposearcher rl prepare` wrote train.parquet and test.parquet [data/rl]
#   TOOL_CONFIG  the verl tool config [verl_recipes/tool_config_default.yaml]
#   REPOS_DIR    clones or mirrors of the training repositories (DIR/owner__name or DIR/owner+name; several
#                joined with ':'); required. Exported as REPOSEARCHER_REPOS_DIR, which the tool config reads
#                in every agent-loop worker (Ray workers on this node inherit it; set it on every node of a
#                multi-node cluster). REPOSEARCHER_SNAPSHOT_DIR / REPOSEARCHER_INDEX_CACHE move the caches.
#   NGPUS        GPUs per node [8; smoke: 1]       NNODES  nodes [1]
#   ROLLOUT_TP   vLLM tensor parallel size [2; smoke: 1]
#   SIZE         7b | 32b: the memory layout below [7b]
#   SMOKE=1      the one-GPU smoke run (config reposearcher_grpo_smoke: 0.5B, 4 issues x 2 rollouts, 2 steps)
#   CKPT_DIR     checkpoints [checkpoints/reposearcher/<experiment>]
#   DRY_RUN=1    print the composed config (`--cfg job`) instead of training
#
# Hardware (paper settings: batch 128 x 16 rollouts, 32k context):
#   7B : 1 node  x 8 x H100/A100 80GB. TP 2 rollout, no offload, ~10-20 min per step depending on turns.
#   32B: 4 nodes x 8 x H100 80GB (NNODES=4 SIZE=32b): TP 8 rollout, FSDP parameter + optimizer offload,
#        Ulysses sequence parallel 4 for the 32k-token trajectories. 2 nodes fit with ppo_mini_batch_size 16
#        and rollout.gpu_memory_utilization 0.5, at about twice the step time.
#   smoke: 1 GPU with >= 24 GB (SMOKE=1).
set -euo pipefail

# Every path verl sees is absolute: Hydra does not change the working directory, but verl resolves a
# relative tool config against the cwd and then its own package, and Ray workers may run elsewhere.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

SMOKE="${SMOKE:-0}"
SIZE="${SIZE:-7b}"
if [[ "$SMOKE" == 1 ]]; then
    CONFIG_NAME=reposearcher_grpo_smoke
    MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}"
    NGPUS="${NGPUS:-1}"
    ROLLOUT_TP="${ROLLOUT_TP:-1}"
    EXPERIMENT="${EXPERIMENT:-grpo-smoke}"
else
    CONFIG_NAME=reposearcher_grpo
    MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-Coder-7B-Instruct}"
    NGPUS="${NGPUS:-8}"
    if [[ "$SIZE" == 32b ]]; then ROLLOUT_TP="${ROLLOUT_TP:-8}"; else ROLLOUT_TP="${ROLLOUT_TP:-2}"; fi
    EXPERIMENT="${EXPERIMENT:-grpo-$SIZE}"
fi
NNODES="${NNODES:-1}"
DATA_DIR="$(abspath "${DATA_DIR:-$ROOT/data/rl}")"
TOOL_CONFIG="$(abspath "${TOOL_CONFIG:-$HERE/tool_config_default.yaml}")"
CKPT_DIR="$(abspath "${CKPT_DIR:-$ROOT/checkpoints/reposearcher/$EXPERIMENT}")"
# A local model directory becomes absolute too; a hub id (owner/name that is not a directory) stays as is.
if [[ -d "$MODEL_PATH" ]]; then MODEL_PATH="$(abspath "$MODEL_PATH")"; fi

if [[ -n "${REPOS_DIR:-}" ]]; then
    REPOSEARCHER_REPOS_DIR="$(IFS=:; for dir in $REPOS_DIR; do printf '%s:' "$(abspath "$dir")"; done)"
    export REPOSEARCHER_REPOS_DIR="${REPOSEARCHER_REPOS_DIR%:}"
fi
if [[ -z "${REPOSEARCHER_REPOS_DIR:-}" && "${DRY_RUN:-0}" != 1 ]]; then
    echo "run_grpo.sh: set REPOS_DIR to the directory of clones or mirrors the tools read" >&2
    exit 2
fi

for required in "$TOOL_CONFIG"; do
    [[ -f "$required" ]] || { echo "run_grpo.sh: missing $required" >&2; exit 2; }
done
if [[ "${DRY_RUN:-0}" != 1 ]]; then
    for split in train test; do
        [[ -f "$DATA_DIR/$split.parquet" ]] || {
            echo "run_grpo.sh: missing $DATA_DIR/$split.parquet (run \`reposearcher rl prepare --out $DATA_DIR\`)" >&2
            exit 2
        }
    done
fi

overrides=(
    "data.train_files=$DATA_DIR/train.parquet"
    "data.val_files=$DATA_DIR/test.parquet"
    "actor_rollout_ref.model.path=$MODEL_PATH"
    "actor_rollout_ref.rollout.multi_turn.tool_config_path=$TOOL_CONFIG"
    "actor_rollout_ref.rollout.tensor_model_parallel_size=$ROLLOUT_TP"
    "trainer.n_gpus_per_node=$NGPUS"
    "trainer.nnodes=$NNODES"
    "trainer.experiment_name=$EXPERIMENT"
    "trainer.default_local_dir=$CKPT_DIR"
)
if [[ "$SIZE" == 32b && "$SMOKE" != 1 ]]; then
    overrides+=(
        "actor_rollout_ref.actor.fsdp_config.param_offload=true"
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true"
        "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=4"
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.55"
    )
fi

# The reward module is imported by name (pkg://reposearcher_plugin.rl.reward): it must be installed in
# the interpreter Ray starts, which is this one unless ray_kwargs.ray_init.runtime_env says otherwise.
export LITELLM_LOCAL_MODEL_COST_MAP=True
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-true}"

dry=()
if [[ "${DRY_RUN:-0}" == 1 ]]; then dry=(--cfg job); fi

exec python3 -m verl.trainer.main_ppo \
    --config-path "$HERE" --config-name "$CONFIG_NAME" \
    "${overrides[@]}" "$@" "${dry[@]}"
