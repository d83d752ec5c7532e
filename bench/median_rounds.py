#!/usr/bin/env python3
"""Merges rounds of one benchmark (flashattn-bench/1 files, bench/README.md) into one file: each configuration's
median over the rounds.

    python3 bench/median_rounds.py --out bench.json round1.json round2.json [...]

Why: the GPU's speed drifts between minutes of one call (an H100 on 2026-11-23: FlashAttention 2's time for one
configuration moved by 17 % between three bench stages of one call), and one round puts minutes between ours and
a peer. Rounds of ours-then-peers, and the median per configuration and implementation, spread that drift over
both alike.

Per (impl, configuration): ms = the median of the rounds' medians, ms_min = the least, ms_rounds = each round's;
rates (tflops, gbps) are rescaled to the new ms. Entries present in only some rounds keep the rounds they have.
The machine block is the first round's, with matmul_tflops the median per dtype over the rounds. Standard library only.
"""

import argparse
import json
import statistics
import sys

import ratios  # bench/ratios.py, beside this file: one definition of a configuration's key

KEY = ("impl",) + ratios.KEY


def key_of(r):
    return tuple(r.get(k) for k in KEY)


def merge(docs):
    out = json.loads(json.dumps(docs[0]))  # a deep copy of the first round
    groups, order = {}, []
    for doc in docs:
        for r in doc.get("results", []):
            k = key_of(r)
            if k not in groups:
                groups[k] = []
                order.append(k)
            groups[k].append(r)
    results = []
    for k in order:
        rounds = groups[k]
        ms = [r["ms"] for r in rounds]
        median = statistics.median(ms)
        entry = dict(rounds[0])
        for rate in ("tflops", "gbps"):
            if rate in entry and entry[rate] is not None:
                entry[rate] = entry[rate] * rounds[0]["ms"] / median
        entry["ms"] = median
        entry["ms_min"] = min(r.get("ms_min", r["ms"]) for r in rounds)
        entry["ms_rounds"] = ms
        results.append(entry)
    out["results"] = results
    seen, skipped = set(key_of(r) for r in results), []
    for doc in docs:
        for s in doc.get("skipped", []):
            k = key_of(s)
            if k not in seen:
                seen.add(k)
                skipped.append(s)
    out["skipped"] = skipped
    ceilings = [d.get("machine", {}).get("matmul_tflops", {}) for d in docs]
    dtypes = sorted({t for c in ceilings for t in c})
    if dtypes:
        out.setdefault("machine", {})["matmul_tflops"] = {t: statistics.median([c[t] for c in ceilings if t in c]) for t in dtypes}
    out.setdefault("settings", {})["rounds"] = len(docs)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("rounds", nargs="+")
    args = p.parse_args()
    try:
        docs = [json.load(open(f)) for f in args.rounds]
    except (OSError, ValueError) as e:
        print(f"median_rounds: {e}", file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(merge(docs), f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
