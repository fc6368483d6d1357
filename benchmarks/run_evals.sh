#!/usr/bin/env bash
# Every leave-one-task-out evaluation behind docs/results.md, reports into ${OUT:-results/}, then the
# default-method selection rules (benchmarks/select_default.py over the four by-task reports,
# benchmarks/select_pools.py over resampled model pools).
# Embeddings are cached (~/.cache/llm-router or ROUTER_CACHE_DIR): the first run embeds ~50k prompts
# (an hour on 2 busy cores), later runs take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${ROUTER_SHARED_DATA:-../shared/data}
OUT=${OUT:-results}
PY=${PYTHON:-.venv/bin/python}
E="${LLM_ROUTER:-.venv/bin/llm-router} eval --repeats 10"
mkdir -p "$OUT"
$E --data $D/routerbench-subset    --out $OUT/routerbench.json --plots $OUT/plots-routerbench
$E --data $D/mmlu-pro              --out $OUT/mmlupro-task.json --plots $OUT/plots-mmlupro
$E --data $D/routellm-gpt4-mixtral --out $OUT/routellm.json
$E --data $D/routerdc-7b           --out $OUT/routerdc-task.json --plots $OUT/plots-routerdc
$PY benchmarks/select_default.py mmlu-pro=$OUT/mmlupro-task.json routerdc-7b=$OUT/routerdc-task.json \
    routellm=$OUT/routellm.json routerbench=$OUT/routerbench.json --json $OUT/selection.json | tee $OUT/selection.md
# the resampled-pools rule (docs/results.md, "Resampled model pools"): the candidates on other sets of models
$PY benchmarks/model_pools.py --out $OUT/pools --shared $D
$PY benchmarks/select_pools.py $OUT/pools --json $OUT/pools/selection.json | tee $OUT/pools/selection.md
# the ten-prompt rule (docs/results.md, "The ten-prompt shortfall on more streams"): the fallback tests on the
# gateway's decisions from a task's first ten prompts, every test on the same 100 streams per task
$PY benchmarks/ten_prompts.py --out $OUT/n10 --shared $D
$E --data $D/mmlu-pro              --out $OUT/mmlupro-subtask.json --holdout-field subtask
$E --data $D/routerdc-7b           --out $OUT/routerdc-benchmark.json --holdout-field benchmark
for a in 0.01 0.05 0.1; do
  $E --data $D/mmlu-pro    --out $OUT/mmlupro-task-alpha$a.json --alpha $a
  $E --data $D/routerdc-7b --out $OUT/routerdc-task-alpha$a.json --alpha $a
  $E --data $D/routellm-gpt4-mixtral --out $OUT/routellm-alpha$a.json --alpha $a
  $E --data $D/routerbench-subset --out $OUT/routerbench-alpha$a.json --alpha $a
done
# the labels rule (docs/results.md, "Labels as evidence")
labels() { echo "$1=$OUT/$2.json,$OUT/$2-alpha0.01.json,$OUT/$2-alpha0.05.json,$OUT/$2-alpha0.1.json"; }
$PY benchmarks/select_labels.py "$(labels mmlu-pro mmlupro-task)" "$(labels routerdc-7b routerdc-task)" \
    "$(labels routellm routellm)" "$(labels routerbench routerbench)" --json $OUT/labels-selection.json \
    | tee $OUT/labels-selection.md
