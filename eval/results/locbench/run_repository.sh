#!/usr/bin/env bash
# The per-repository driver used for this run (kept as run; paths are this machine's scratch folders).
# process.sh owner/name GITDIR [delete]: link, check base commits, run retrieval and bm25 on the repo's instances.
set -uo pipefail
REPO=$1; GITDIR=$2; DEL=${3:-}
L=/work/scratch/locb
DATA=/work/shared/data/loc-bench/test.jsonl
NAME=${REPO/\//+}
CHECK=$GITDIR; [ -d "$GITDIR/.git" ] && CHECK=$GITDIR/.git  # a non-bare clone
ln -sfn "$GITDIR" "$L/repos/$NAME"
IDS=$(python - "$DATA" "$REPO" "$CHECK" "$L/status.tsv" <<'PY'
import json, subprocess, sys
data, repo, gitdir, status = sys.argv[1:]
ok, missing = [], []
for line in open(data):
    row = json.loads(line)
    if row["repo"] != repo:
        continue
    r = subprocess.run(["git", "--git-dir", gitdir, "cat-file", "-e", row["base_commit"] + "^{commit}"], capture_output=True)
    (ok if r.returncode == 0 else missing).append(row["instance_id"])
with open(status, "a") as out:
    out.write(f"{repo}\t{gitdir}\t{len(ok)}\t{len(missing)}\t{','.join(missing)}\n")
print(",".join(ok))
PY
)
cd /work/wt/locb
export PYTHONPATH=/work/wt/locb
if [ -n "$IDS" ]; then
  for M in retrieval bm25; do
    nice -n 10 reposearcher run --dataset "$DATA" --repos-dir "$L/repos" --offline --allow-missing-blobs --model $M --workers 1 \
      --out "$L/$M.jsonl" --cache-dir "$L/snapshots" --max-cache-gb 3 --index-cache-dir "$L/index" \
      --instances "$IDS" >> "$L/logs/$NAME.$M.log" 2>&1
  done
fi
echo "$(date -u +%H:%M:%S) done $REPO ok=$(echo $IDS | tr ',' '\n' | grep -c .)" >> "$L/progress.log"
if [ "$DEL" = delete ]; then
  T=$L/trash.$$; mkdir -p $T; mv "$L/snapshots" "$L/index" $T/ 2>/dev/null; MIRROR=$(dirname "$GITDIR"); mv "$MIRROR" $T/mirror && echo "$REPO" >> "$L/deleted.txt"; nohup rm -rf $T >/dev/null 2>&1 &
fi
