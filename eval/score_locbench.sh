#!/usr/bin/env bash
# Score eval/results/locbench/{retrieval,bm25}.jsonl on Loc-Bench V1 (560 instances) under the three protocols
# (strict, tooltrain, locagent), against Loc-Bench's published gold (LocAgent's own: the edited functions and
# methods; files and modules derived from them). Writes, for each protocol P:
#   scores_P.{md,json}      over all 560 instances: an instance without a prediction is a miss;
#   scores_run_P.{md,json}  over the instances both systems ran (a prediction without an error);
# and scores_locagent_<category>.{md,json}, the locagent protocol per issue category (not run = miss).
# Run from the repository root; DATA defaults to ../shared/data as everywhere in eval/.
set -euo pipefail
DATA=${DATA:-../shared/data}/loc-bench
R=eval/results/locbench
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
python - "$DATA/test.jsonl" "$DATA/gold_functions.json" "$R/retrieval.jsonl" "$R/bm25.jsonl" "$RUN" <<'PY'
import json, sys
from collections import defaultdict
test, gold_file, retrieval, bm25, out = sys.argv[1:]
gold = json.load(open(gold_file))

def ran(path):
    rows = (json.loads(line) for line in open(path) if line.strip())
    return {row["instance_id"] for row in rows if not row.get("error")}

def subset(name, lines):
    # eval loc wants the gold of exactly the dataset's instances
    open(f"{out}/{name}.jsonl", "w").writelines(lines)
    ids = [json.loads(line)["instance_id"] for line in lines]
    json.dump({key: gold[key] for key in ids}, open(f"{out}/{name}.gold.json", "w"))

both = ran(retrieval) & ran(bm25)
lines = open(test).readlines()
by_category = defaultdict(list)
for line in lines:
    by_category[json.loads(line)["category"]].append(line)
subset("run", [line for line in lines if json.loads(line)["instance_id"] in both])
for category, rows in by_category.items():
    subset("category_" + category.split()[0].lower(), rows)
PY
RAN=$(wc -l < "$RUN/run.jsonl")
score() { # dataset gold protocol title out-stem
  reposearcher eval loc --dataset "$1" --gold "$2" \
    --predictions "$R/retrieval.jsonl" "$R/bm25.jsonl" --protocol "$3" --markdown --title "$4" > "$5.md"
  reposearcher eval loc --dataset "$1" --gold "$2" \
    --predictions "$R/retrieval.jsonl" "$R/bm25.jsonl" --protocol "$3" --json > "$5.json"
}
for P in strict tooltrain locagent; do
  score "$DATA/test.jsonl" "$DATA/gold_functions.json" $P "Loc-Bench V1 (all 560; not run = miss): offline default vs plain BM25" "$R/scores_$P"
  score "$RUN/run.jsonl" "$RUN/run.gold.json" $P "Loc-Bench V1 ($RAN instances run): offline default vs plain BM25" "$R/scores_run_$P"
done
for SUBSET in "$RUN"/category_*[a-z].jsonl; do
  NAME=$(basename "$SUBSET" .jsonl)
  score "$SUBSET" "${SUBSET%.jsonl}.gold.json" locagent \
    "Loc-Bench V1, ${NAME#category_} ($(wc -l < "$SUBSET"); not run = miss): offline default vs plain BM25" \
    "$R/scores_locagent_${NAME#category_}"
done
# The subsets lived in a temporary folder: name them by what they are instead.
sed -i "s|$RUN/\([a-z_]*\)\.gold\.json|<$DATA/gold_functions.json, \1 subset>|g; s|$RUN/\([a-z_]*\)\.jsonl|<$DATA/test.jsonl, \1 subset (eval/score_locbench.sh)>|g" \
  "$R"/scores_*.md "$R"/scores_*.json
