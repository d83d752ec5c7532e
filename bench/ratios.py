#!/usr/bin/env python3
"""Ratios of peers to ours in flashattn-bench/1 files (bench/README.md), as Markdown tables.

    python3 bench/ratios.py gpu.json [decode.json ...] [--ours ours:cuda_sm80] [--write]

For every configuration (direction, dtype, causal, batch, seqlen, seqlen_q, nheads, nheads_kv,
headdim) that ours ran, each peer that ran the same configuration gets ratio = peer_ms / ours_ms:
above 1 means ours is faster. With --ours, results of our other backends in the file count as
peers too (hopper_sm90 against cuda_sm80). Each table ends with the geometric mean of the ratios per peer.
--write also stores them in each file as "ratios": [{..., "ours", "ours_ms", "peer", "peer_ms",
"ratio"}] (readers ignore fields they do not know). Exit status 1 when a file holds no result of
ours (so a pipeline notices a benchmark that measured nothing), 2 on bad input.
Standard library only: runs on the GPU machine and anywhere else.
"""

import argparse
import json
import math
import sys

KEY = ("direction", "dtype", "causal", "batch", "seqlen", "seqlen_q", "nheads", "nheads_kv", "headdim")


def key_of(r):
    return tuple(r.get(k) for k in KEY)


def ratios_of(doc, ours_filter):
    ours, peers = {}, {}
    for r in doc.get("results", []):
        impl = r.get("impl", "")
        if not isinstance(r.get("ms"), (int, float)) or r["ms"] <= 0:
            continue
        if impl.startswith("ours") and (ours_filter is None or impl == ours_filter):
            ours.setdefault(key_of(r), r)
        elif not impl.startswith("ours") or ours_filter is not None:
            # With --ours, our other backends (e.g. ours:cuda_sm80 next to ours:hopper_sm90) are peers.
            peers.setdefault(key_of(r), []).append(r)
    rows = []
    for key, o in ours.items():
        for p in peers.get(key, []):
            row = {k: v for k, v in zip(KEY, key) if v is not None}
            row.update({"ours": o["impl"], "ours_ms": o["ms"], "peer": p["impl"], "peer_ms": p["ms"],
                        "ratio": p["ms"] / o["ms"]})
            rows.append(row)
    return ours, rows


def fmt_rate(r):
    if r.get("direction") == "decode" and r.get("gbps") is not None:
        share = f" ({r['gbps'] / r['copy_gbps']:.0%})" if r.get("copy_gbps") else ""
        return f"{r['gbps']:.0f} GB/s{share}"
    t = r.get("tflops", 0)
    return f"{t:.1f}" if t >= 10 else f"{t:.3g}"


def markdown(path, doc, ours, rows):
    out = [f"## {path}", ""]
    machine = doc.get("machine", {})
    gpus = ", ".join(g.get("name", "?") for g in machine.get("gpus", [])) or machine.get("cpu", "?")
    sw = machine.get("software", {})
    out.append(f"{gpus}; {doc.get('date', '?')}; commit {machine.get('git_commit', '?')}; "
               + ", ".join(f"{k} {v}" for k, v in sw.items()))
    if machine.get("matmul_tflops"):
        out.append("")
        out.append("Dense matmul in the same run (torch.matmul, 8192³; the tensor cores' ceiling on this GPU and clock): "
                   + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in machine["matmul_tflops"].items()))
    out.append("")
    if not ours:
        out += ["**No result of ours in this file.**", ""]
    peers = sorted({r["peer"] for r in rows})
    by_dir = {}
    for o in ours.values():
        by_dir.setdefault(o["direction"], []).append(o)
    peer_ms = {(r["peer"], tuple(r.get(k) for k in KEY)): r["peer_ms"] for r in rows}
    for direction in sorted(by_dir, key=lambda d: {"fwd": 0, "bwd": 1, "fwd+bwd": 2}.get(d, 3)):
        decode = direction == "decode"
        unit = "GB/s (of copy)" if decode else "TFLOP/s"
        head = ["dtype", "d", "causal", "kv len" if decode else "seqlen", "b×h" + ("/h_kv" if decode else ""),
                "ours ms", f"ours {unit}"] + [f"{p} ms" for p in peers] + [f"{p} / ours" for p in peers]
        out.append(f"### {direction} — ratio = peer ms / ours ms (> 1: ours faster)")
        out.append("")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
        entries = sorted(by_dir[direction], key=lambda r: (r["dtype"], r["headdim"], r["causal"], r["batch"] if decode else 0, r["seqlen"]))
        logs = {p: [] for p in peers}
        for o in entries:
            k = key_of(o)
            cells = [o["dtype"], str(o["headdim"]), "yes" if o["causal"] else "no", str(o["seqlen"]),
                     f"{o['batch']}×{o['nheads']}" + (f"/{o.get('nheads_kv', o['nheads'])}" if decode else ""),
                     f"{o['ms']:.3f}", fmt_rate(o)]
            ratio_cells = []
            for p in peers:
                pm = peer_ms.get((p, k))
                cells.append(f"{pm:.3f}" if pm else "—")
                if pm:
                    ratio_cells.append(f"{pm / o['ms']:.2f}")
                    logs[p].append(math.log(pm / o["ms"]))
                else:
                    ratio_cells.append("—")
            out.append("| " + " | ".join(cells + ratio_cells) + " |")
        for p in peers:
            if logs[p]:
                out.append(f"\n{p}: geometric mean ratio {math.exp(sum(logs[p]) / len(logs[p])):.2f} over {len(logs[p])} configs")
        out.append("")
    skipped = [s for s in doc.get("skipped", []) if s.get("impl", "").startswith("ours")]
    if skipped:
        out.append(f"{len(skipped)} configurations of ours skipped, e.g.: "
                   + "; ".join(f"{s.get('direction')} {s.get('dtype')} d={s.get('headdim')} s={s.get('seqlen')}: {s.get('reason', '')[:120]}"
                               for s in skipped[:3]))
        out.append("")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--ours", help="only this implementation of ours (e.g. ours:cuda_sm80); default: every ours:*")
    p.add_argument("--write", action="store_true", help='also store the ratios in each file as "ratios"')
    args = p.parse_args()
    status = 0
    for path in args.files:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        ours, rows = ratios_of(doc, args.ours)
        print(markdown(path, doc, ours, rows))
        if not ours:
            status = 1
        if args.write:
            doc["ratios"] = rows
            with open(path, "w") as f:
                json.dump(doc, f, indent=2, ensure_ascii=False)
                f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
