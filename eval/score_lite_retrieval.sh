#!/usr/bin/env bash
# Score eval/results/lite_retrieval/{retrieval,bm25}.jsonl (made by eval/retrieval_vs_bm25.py) on the 300
# SWE-bench Lite test instances, both protocols, and on the 234 instances not used to tune the weights.
set -euo pipefail
DATA=../shared/data/swe-bench-lite
R=eval/results/lite_retrieval
HELD_OUT=$(mktemp --suffix=.jsonl)
HELD_OUT_GOLD=$(mktemp --suffix=.json)
python - "$DATA/test.jsonl" "$DATA/gold_functions.json" "$R/tuning_ids.json" "$HELD_OUT" "$HELD_OUT_GOLD" <<'PY'
import json, sys
test, gold, tuning, out, out_gold = sys.argv[1:]
tuned = set(json.load(open(tuning)))
with open(out, "w") as sink:
    sink.writelines(line for line in open(test) if json.loads(line)["instance_id"] not in tuned)
json.dump({key: value for key, value in json.load(open(gold)).items() if key not in tuned}, open(out_gold, "w"))
PY
for P in strict tooltrain; do
  for FORMAT in markdown json; do
    EXT=$([ $FORMAT = markdown ] && echo md || echo json)
    reposearcher eval loc --dataset "$DATA/test.jsonl" --gold "$DATA/gold_functions.json" \
      --predictions "$R/retrieval.jsonl" "$R/bm25.jsonl" --protocol $P --$FORMAT \
      --title "SWE-bench Lite (300): offline default vs plain BM25" > "$R/scores_${P}.$EXT"
    reposearcher eval loc --dataset "$HELD_OUT" --gold "$HELD_OUT_GOLD" \
      --predictions "$R/retrieval.jsonl" "$R/bm25.jsonl" --protocol $P --$FORMAT \
      --title "SWE-bench Lite, 234 instances not used for tuning: offline default vs plain BM25" \
      > "$R/scores_heldout_${P}.$EXT"
  done
done
rm -f "$HELD_OUT" "$HELD_OUT_GOLD"
