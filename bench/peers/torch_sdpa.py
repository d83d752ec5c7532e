#!/usr/bin/env python3
"""PyTorch SDPA peers for `flashattn bench` (run on the GPU machine).

Times torch.nn.functional.scaled_dot_product_attention with the flash backend (FlashAttention 2)
and the cuDNN backend on the grid of DESIGN.md and merges the results into a flashattn-bench/1
JSON file (bench/README.md), so that `flashattn plot` draws ours and the peers together:

    flashattn bench --out results.json            # ours, on the same machine
    python3 bench/peers/torch_sdpa.py --merge results.json
    flashattn plot --in results.json --out results.png

Same shapes, FLOP formula and statistic (median of --iters after --warmup, CUDA events) as ours.

--decode times the decode grid of `flashattn bench --decode` instead: q of one row per sequence
against full K/V caches of --seqlen keys (defaults: d 128, kv 8k-64k, batch 8-64, bf16), reported
as GB/s of the bytes moved next to a device-to-device copy's GB/s (bytes read + written).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

SCHEMA = "flashattn-bench/1"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merge", metavar="FILE", help="append to this flashattn-bench/1 file (created if missing)")
    p.add_argument("--out", metavar="FILE", help="write here instead of --merge's file")
    p.add_argument("--impl", default="flash,cudnn", help="SDPA backends: flash, cudnn, efficient, math (comma-separated)")
    p.add_argument("--headdim", help="default 64,128,256; decode: 128")
    p.add_argument("--seqlen", help="default 512,...,16384; decode: the kv lengths 8192,16384,32768,65536")
    p.add_argument("--causal", default="both", choices=["both", "true", "false"])
    p.add_argument("--direction", default="fwd,bwd,fwd+bwd")
    p.add_argument("--dtype", help="default bf16,fp16; decode: bf16")
    p.add_argument("--decode", action="store_true", help="the decode grid (see above) instead of the standard one")
    p.add_argument("--batch", default="8,16,32,64", help="decode: batch sizes")
    p.add_argument("--kv-heads", type=int, help="decode: key/value heads [default: nheads]")
    p.add_argument("--tokens", type=int, default=16384, help="tokens per batch (batch = tokens / seqlen)")
    p.add_argument("--model-dim", type=int, default=2048, help="nheads = model dim / headdim")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--timing", default="synced", choices=["synced", "queued"],
                   help="synced: events around each call, synchronised after it; queued: the calls back to back")
    args = p.parse_args()
    args.headdim = args.headdim or ("128" if args.decode else "64,128,256")
    args.seqlen = args.seqlen or ("8192,16384,32768,65536" if args.decode else "512,1024,2048,4096,8192,16384")
    args.dtype = args.dtype or ("bf16" if args.decode else "bf16,fp16")
    return args


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flops(batch, nheads, seqlen, headdim, causal, direction):
    fwd = 4.0 * batch * nheads * seqlen * seqlen * headdim * (0.5 if causal else 1.0)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}[direction]


def event_times(torch, fn, n):
    """Milliseconds of n calls of fn enqueued back to back, events between them, one synchronisation at the end."""
    events = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
    events[0].record()
    for i in range(n):
        fn()
        events[i + 1].record()
    events[-1].synchronize()
    return [events[i].elapsed_time(events[i + 1]) for i in range(n)]


def median_ms(torch, fn, warmup, iters, queued=False):
    """Synced (the default): each call between its own events, synchronised after it; queued: the calls back to
    back (`flashattn bench --timing queued`)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = event_times(torch, fn, iters) if queued else [event_times(torch, fn, 1)[0] for _ in range(iters)]
    return statistics.median(times), min(times)


def run_decode(args, torch, F, sdpa_kernel, backends, dtypes, impls, headdims, seqlens, dtype_names, doc):
    """One query row per sequence against full caches (b, kv, h_kv, d), viewed as SDPA's (b, h, s, d)."""
    batches = [int(x) for x in args.batch.split(",")]
    # A device-to-device copy of 1 GiB, bytes read + written, as `flashattn bench --decode` measures it.
    src = torch.empty(2**29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    copy_ms, _ = median_ms(torch, lambda: dst.copy_(src), 3, 10)
    copy_gbps = 2 * src.numel() * src.element_size() / (copy_ms * 1e-3) / 1e9
    del src, dst
    print(f"device copy: {copy_gbps:.0f} GB/s (bytes read + written)", flush=True)
    for impl in impls:
        for dname in dtype_names:
            dtype = dtypes[dname]
            for d in headdims:
                h = args.model_dim // d
                hk = args.kv_heads or h
                for b in batches:
                    for kv in seqlens:
                        entry = {"impl": f"torch-sdpa-{impl}", "direction": "decode", "dtype": dname, "causal": False,
                                 "batch": b, "seqlen": kv, "nheads": h, "headdim": d, "seqlen_q": 1, "nheads_kv": hk}
                        try:
                            q = torch.randn(b, 1, h, d, device="cuda", dtype=dtype).transpose(1, 2)
                            k, v = (torch.randn(b, kv, hk, d, device="cuda", dtype=dtype).transpose(1, 2) for _ in range(2))
                            gqa = {"enable_gqa": True} if hk != h else {}
                            with sdpa_kernel(backends[impl]):
                                def fwd():
                                    return F.scaled_dot_product_attention(q, k, v, **gqa)
                                ms, ms_min = median_ms(torch, fwd, args.warmup, args.iters, args.timing == "queued")
                            moved = (2.0 * b * kv * hk * d + 2.0 * b * h * d) * q.element_size()
                            entry.update({"ms": ms, "ms_min": ms_min, "iters": args.iters, "device": "cuda:0",
                                          "tflops": 4.0 * b * h * kv * d / (ms * 1e-3) / 1e12,
                                          "gbps": moved / (ms * 1e-3) / 1e9, "copy_gbps": copy_gbps})
                            doc["results"].append(entry)
                            print(f"{entry['impl']:18} decode {dname} d={d:3} b={b:3} kv={kv:6} {ms:8.3f} ms "
                                  f"{entry['gbps']:7.0f} GB/s ({entry['gbps'] / copy_gbps:4.0%} of copy)", flush=True)
                        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                            entry["reason"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                            doc["skipped"].append(entry)
                            print(f"{entry['impl']:18} decode {dname} d={d:3} b={b:3} kv={kv:6} skipped: {entry['reason']}", flush=True)
                        q = k = v = None
                        torch.cuda.empty_cache()


def main():
    args = parse_args()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    impls = [i.strip() for i in args.impl.split(",") if i.strip()]
    headdims = [int(x) for x in args.headdim.split(",")]
    seqlens = [int(x) for x in args.seqlen.split(",")]
    causals = {"both": [False, True], "true": [True], "false": [False]}[args.causal]
    directions = [d.strip() for d in args.direction.split(",")]
    dtype_names = [d.strip() for d in args.dtype.split(",")]

    path_in = args.merge
    doc = None
    if path_in and os.path.exists(path_in):
        with open(path_in) as f:
            doc = json.load(f)
    if doc is None:
        doc = {"schema": SCHEMA, "date": None, "machine": {}, "results": [], "skipped": []}
    doc.setdefault("results", [])
    doc.setdefault("skipped", [])
    machine = doc.setdefault("machine", {})
    props = torch.cuda.get_device_properties(0)
    machine.setdefault("cpu", cpu_model())
    machine.setdefault("cores", os.cpu_count())
    machine.setdefault("simd", "")
    machine.setdefault("os", platform.platform())
    if not machine.get("gpus"):
        machine["gpus"] = [{
            "name": props.name,
            "arch": f"sm_{props.major}{props.minor}",
            "compute_units": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
        }]
    software = machine.setdefault("software", {})
    software["torch"] = torch.__version__
    software["torch_cuda"] = str(torch.version.cuda)
    software["cudnn"] = str(torch.backends.cudnn.version())
    software["python"] = platform.python_version()

    if not args.decode:
        # The tensor cores' ceiling in this run: a dense matmul of the grid's dtypes (8192³, 2·n³ FLOP), so that
        # attention TFLOP/s read against what the same GPU, clocks and software reach on a plain GEMM.
        ceiling = machine.setdefault("matmul_tflops", {})
        n = 8192
        for dname in dtype_names:
            if dname == "e4m3":
                # fp8: torch._scaled_mm (e4m3 x e4m3 -> bf16, unit scales; B column-major as cuBLASLt wants it)
                a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
                b_ = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn).t()
                one = torch.ones((), device="cuda")
                fn, how = (lambda: torch._scaled_mm(a, b_, one, one, out_dtype=torch.bfloat16)), "torch._scaled_mm"
            else:
                a, b_ = (torch.randn(n, n, device="cuda", dtype=dtypes[dname]) for _ in range(2))
                fn, how = (lambda: torch.matmul(a, b_)), "torch.matmul"
            ms, _ = median_ms(torch, fn, 3, 20)
            ceiling[dname] = round(2.0 * n ** 3 / (ms * 1e-3) / 1e12, 1)
            print(f"dense matmul {dname} {n}^3: {ceiling[dname]:.1f} TFLOP/s ({how}, median of 20)", flush=True)
            del a, b_
        torch.cuda.empty_cache()
    if args.decode:
        run_decode(args, torch, F, sdpa_kernel, backends, dtypes, impls, headdims, seqlens, dtype_names, doc)
    for impl in impls if not args.decode else []:
        for dname in dtype_names:
            if dname not in dtypes:  # e4m3: SDPA has no fp8 attention; ours stands alone there (and the fp8 matmul above)
                doc["skipped"].append({"impl": f"torch-sdpa-{impl}", "dtype": dname,
                                       "reason": f"torch SDPA has no {dname} attention"})
                print(f"torch-sdpa-{impl}: skipped {dname} (no fp8 attention in SDPA)", flush=True)
                continue
            dtype = dtypes[dname]
            for d in headdims:
                for causal in causals:
                    for s in seqlens:
                        b, h = args.tokens // s, args.model_dim // d
                        # (b, s, h, d) as ours, viewed as SDPA's (b, h, s, d).
                        q, k, v, dout = (torch.randn(b, s, h, d, device="cuda", dtype=dtype).transpose(1, 2) for _ in range(4))
                        for t in (q, k, v):
                            t.requires_grad_(True)
                        for direction in directions:
                            entry = {"impl": f"torch-sdpa-{impl}", "direction": direction, "dtype": dname, "causal": causal,
                                     "batch": b, "seqlen": s, "nheads": h, "headdim": d}
                            try:
                                with sdpa_kernel(backends[impl]):
                                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                                    def fwd():
                                        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                                    def bwd():
                                        for t in (q, k, v):
                                            t.grad = None
                                        out.backward(dout, retain_graph=True)

                                    def fwd_bwd():
                                        for t in (q, k, v):
                                            t.grad = None
                                        fwd().backward(dout)

                                    fn = {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd_bwd}[direction]
                                    ms, ms_min = median_ms(torch, fn, args.warmup, args.iters, args.timing == "queued")
                                entry.update({"ms": ms, "ms_min": ms_min, "iters": args.iters, "timing": args.timing, "device": "cuda:0",
                                              "tflops": flops(b, h, s, d, causal, direction) / (ms * 1e-3) / 1e12})
                                doc["results"].append(entry)
                                print(f"{entry['impl']:18} {direction:7} {dname} d={d:3} s={s:5} causal={causal!s:5} "
                                      f"{ms:8.3f} ms {entry['tflops']:7.1f} TFLOP/s", flush=True)
                            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                                entry["reason"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                                doc["skipped"].append(entry)
                                print(f"{entry['impl']:18} {direction:7} {dname} d={d:3} s={s:5} skipped: {entry['reason']}", flush=True)
                        del q, k, v, dout
                        torch.cuda.empty_cache()

    if not doc.get("date"):
        doc["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    path_out = args.out or path_in or "torch-sdpa.json"
    with open(path_out, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
