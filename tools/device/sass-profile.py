#!/usr/bin/env python3
"""Reads the per-SASS-instruction counters that `gpu-check.sh --stages ...,profile` writes
(profile-sass-d<D>-<dtype>.csv: `ncu --page source --print-source sass --csv`) and prints where a kernel
spends its time, instruction by instruction:

  - the instructions with shared-memory wavefronts above the ideal (bank conflicts, split sectors);
  - per stall reason, its share of all warp samples and the instructions that collect most of it;
  - executed instructions per opcode (warp level), the mix the scheduler had to issue.

    python3 tools/device/sass-profile.py profile-sass-d64-bf16.csv [--top 8] [--around N [--width 40]]

--around N prints the SASS around instruction N (index as printed) with its samples and top two stall
reasons, to read a hot spot in context. Standard library only.
"""
import argparse
import collections
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def opcode(source):
    words = source.split()
    if not words:
        return ""
    word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return word.split(".")[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=8, help="instructions listed per stall reason [8]")
    ap.add_argument("--around", type=int, help="print the SASS around this instruction index")
    ap.add_argument("--width", type=int, default=40, help="instructions either side for --around [40]")
    args = ap.parse_args()

    with open(args.csv, newline="") as f:
        rows = list(csv.reader(f))
    # Row 0 names the kernel, row 1 the columns, then one row per SASS instruction.
    header_at = next((i for i, r in enumerate(rows) if r and r[0] == "Address"), None)
    if header_at is None:
        sys.exit(f"{args.csv}: no 'Address' header row (not an ncu --page source --csv file?)")
    header, data = rows[header_at], rows[header_at + 1:]
    col = {name: i for i, name in enumerate(header)}
    for need in ("Source", "Warp Stall Sampling (All Samples)", "Instructions Executed"):
        if need not in col:
            sys.exit(f"{args.csv}: column '{need}' missing")
    src = [r[col["Source"]].strip() for r in data]
    samples = [number(r[col["Warp Stall Sampling (All Samples)"]]) for r in data]
    executed = [number(r[col["Instructions Executed"]]) for r in data]
    stall_cols = [(name[len("stall_"):], i) for name, i in col.items()
                  if name.startswith("stall_") and "Not Issued" not in name]
    total = sum(samples) or 1.0

    if rows[header_at - 1:header_at] and header_at > 0:
        print(" ".join(rows[header_at - 1])[:200])
    print(f"{len(data)} instructions, {int(total)} warp samples")

    if args.around is not None:
        lo, hi = max(0, args.around - args.width), min(len(data), args.around + args.width + 1)
        for i in range(lo, hi):
            top = sorted(((number(data[i][c]), n) for n, c in stall_cols), reverse=True)[:2]
            reasons = " ".join(f"{n}:{int(v)}" for v, n in top if v > 0)
            mark = ">" if i == args.around else " "
            print(f"{mark}{i:5d} {int(executed[i]):10d} {int(samples[i]):7d} {reasons:34s} {src[i]}")
        return

    if all(k in col for k in ("L1 Wavefronts Shared Excessive", "L1 Wavefronts Shared", "L1 Wavefronts Shared Ideal")):
        ex = [(number(r[col["L1 Wavefronts Shared Excessive"]]), number(r[col["L1 Wavefronts Shared"]]),
               number(r[col["L1 Wavefronts Shared Ideal"]]), i) for i, r in enumerate(data)]
        excess = sorted((e for e in ex if e[0] > 0), reverse=True)
        all_wf = sum(e[1] for e in ex) or 1.0
        print(f"\nshared-memory wavefronts: {int(all_wf)}, above ideal: {int(sum(e[0] for e in excess))} "
              f"({100 * sum(e[0] for e in excess) / all_wf:.1f} %)")
        by_op = collections.Counter()
        for e in excess:
            by_op[opcode(src[e[3]])] += e[0]
        for op, v in by_op.most_common():
            print(f"  {op:10s} {int(v):12d} above ideal")
        for e, wf, ideal, i in excess[:args.top]:
            print(f"  @{i:<5d} {int(wf):11d} wavefronts, ideal {int(ideal):11d}  {src[i]}")

    print("\nstall reasons (share of all warp samples), top instructions each:")
    shares = sorted(((sum(number(r[c]) for r in data), n, c) for n, c in stall_cols), reverse=True)
    for s, name, c in shares:
        if s <= 0:
            continue
        print(f"  {name:16s} {100 * s / total:5.1f} %")
        top = sorted(((number(r[c]), i) for i, r in enumerate(data)), reverse=True)[:args.top]
        for v, i in top:
            if v > 0:
                print(f"      {int(v):8d} @{i:<5d} {src[i]}")

    print("\nexecuted instructions per opcode (warp level):")
    by_op = collections.Counter()
    for i, s in enumerate(src):
        by_op[opcode(s)] += executed[i]
    all_exec = sum(by_op.values()) or 1.0
    for op, v in by_op.most_common(25):
        print(f"  {op:10s} {int(v):14d} {100 * v / all_exec:5.1f} %")


if __name__ == "__main__":
    main()
