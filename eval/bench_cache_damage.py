"""Damage a parse cache file every way the sweep allows and count what index builds make of it.

Usage: python eval/bench_cache_damage.py [--mask-stride 4] [--outside-stride 16] [--truncate-step 256]
       [--json PATH]

Damages, each applied to a fresh copy of one cache file (tests/cache_damage.py builds it and runs trials):
- ``row flip``: every single byte of every stored value (parse, names and words of each file, the
  snapshot of a tree, overflow pages included, with the record bytes before each run), XOR 0xFF; and every
  ``--mask-stride``-th of them XOR a seeded random mask;
- ``other flip``: every ``--outside-stride``-th byte of the rest of the file (page headers, b-tree cells,
  the schema, free space), XOR 0xFF;
- ``truncation``: the file cut every ``--truncate-step`` bytes;
- ``garbage page``: each page overwritten with noise.

Outcomes: ``cached`` (the damage went unnoticed and every build was served as from the intact file),
``miss`` (damaged rows ignored, parsed again and replaced), ``rebuilt`` (the store moved aside and a new
one built), ``wrong`` (an index that differs from the one built without a cache, or a build that raised).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cache_damage import OUTCOMES, flip, garbage_page, make_bench, run_trial, truncate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask-stride", type=int, default=4)
    parser.add_argument("--outside-stride", type=int, default=16)
    parser.add_argument("--truncate-step", type=int, default=256)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one warning per damaged store would flood the terminal
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reposearcher-cache-damage-") as scratch:
        bench = make_bench(Path(scratch))
        size = len(bench.pristine)
        in_rows = bench.row_positions()
        row_set = set(in_rows)
        damages = {
            "row flip (xor 0xff)": [flip(p) for p in in_rows],
            "row flip (random mask)": [flip(p, rng.randrange(1, 255)) for p in in_rows[:: args.mask_stride]],
            "other flip (xor 0xff)": [
                flip(p) for p in range(0, size, args.outside_stride) if p not in row_set
            ],
            "truncation": [truncate(n) for n in range(0, size, args.truncate_step)],
            "garbage page": [garbage_page(page, bench.page_size) for page in range(size // bench.page_size)],
        }
        figures: dict[str, dict[str, int]] = {}
        for kind, trials in damages.items():
            counts = Counter(run_trial(bench, Path(scratch) / "trial", damage) for damage in trials)
            figures[kind] = {"tried": len(trials), **{outcome: counts[outcome] for outcome in OUTCOMES}}
            print(_row(kind, figures[kind]), flush=True)
    total = {key: sum(row[key] for row in figures.values()) for key in ("tried", *OUTCOMES)}
    print(_row("all", total))
    result = {
        "cache_file_bytes": size,
        "page_size": bench.page_size,
        "stored_row_bytes": len(in_rows),
        "figures": figures,
        "total": total,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({key: result[key] for key in ("cache_file_bytes", "stored_row_bytes", "seconds")}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if total["wrong"]:
        raise SystemExit(f"{total['wrong']} damaged caches gave a wrong index")


def _row(kind: str, counts: dict[str, int]) -> str:
    return f"{kind:24} " + " ".join(f"{key} {counts[key]:5}" for key in ("tried", *OUTCOMES))


if __name__ == "__main__":
    main()
