#!/usr/bin/python3
"""QAT results on the shipped models (issue 5): runs `nnq qat --eval` for every
model x width x method below on models/<name>.onnx (per-channel weights, first and
last layer at 8 bits), beside FP32 and PTQ at the same width, and writes the table
into docs/results.md between the markers
    <!-- qat-shipped:begin -->  <!-- qat-shipped:end -->
(other sections of the file are kept), and training throughput and peak memory of
each run into BENCHMARKS.md ("## QAT training throughput and memory (issue 5)").

Usage (from the repo root, after `make build`):
    /usr/bin/python3 bench/qat_results.py [--nnq build/nnq] [--models resnet20,...]
        [--widths 4,3,2] [--methods ste,lsq,lsq+] [--epochs 3] [--train-limit 0]
        [--eval-limit 0] [--threads 2] [--adaround-iters 0] [--out docs/results.md]
        [--benchmarks BENCHMARKS.md] [--extra "--distill 1"]

A smoke run that proves the script works without touching the docs (about a
minute on 2 cores):
    /usr/bin/python3 bench/qat_results.py --models resnet20 --widths 4 --methods lsq \\
        --epochs 1 --train-limit 512 --eval-limit 500 --out /tmp/qat.md --benchmarks /tmp/qat_bench.md

Each method starts from its usual initialisation: ste from PTQ ranges (MSE, the
white paper's QAT pipeline), lsq and lsq+ from their papers' (`--init lsq`); the
option --init overrides that for all. Every number is nnq's top-1 on the 10000
Fashion-MNIST test images (--eval-limit to shorten a trial run); PTQ is `nnq
quantize` at the same width (MSE ranges, nearest rounding; with
--adaround-iters N also the standard recipe with AdaRound, and the better of the
two is shown). The raw JSON of each run is kept in bench/results/qat_shipped.jsonl.
"""
import argparse
import datetime
import json
import os
import sys

from benchlib import ROOT, cpu_model, replace_section, run

BEGIN, END = "<!-- qat-shipped:begin -->", "<!-- qat-shipped:end -->"
BENCH_SECTION = "## QAT training throughput and memory (issue 5)"
METHOD_INIT = {"ste": "mse", "lsq": "lsq", "lsq+": "lsq"}










def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnq", default="build/nnq")
    ap.add_argument("--models", default="mobilenetv2,mobilenetv2-hswish,resnet20")
    ap.add_argument("--widths", default="4,3,2")
    ap.add_argument("--methods", default="ste,lsq,lsq+")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--eval-limit", type=int, default=0)
    ap.add_argument("--calib-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="one init for every method")
    ap.add_argument("--adaround-iters", type=int, default=0)
    ap.add_argument("--extra", default="", help="more `nnq qat` options for every run")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--benchmarks", default="BENCHMARKS.md")
    a = ap.parse_args()

    widths = [int(w) for w in a.widths.split(",")]
    methods = a.methods.split(",")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    log = open(os.path.join(ROOT, "bench", "results", "qat_shipped.jsonl"), "w")
    common = ["--test-limit", str(a.eval_limit), "--threads",
              str(a.threads), "--calib-size", str(a.calib_size), "--json", "--quiet"]
    rows = []
    for m in a.models.split(","):
        path = f"models/{m}.onnx"
        if not os.path.exists(os.path.join(ROOT, path)):
            print(f"skip {m}: {path} missing", file=sys.stderr)
            continue
        ev = run([a.nnq, "eval", path, "--limit", str(a.eval_limit), "--threads", str(a.threads),
                  "--json", "--quiet"])
        for b in widths:
            row = {"model": m, "bits": b, "fp32": ev.get("top1"), "ptq": None, "cells": {}}
            ptq_cfgs = [["--wbits", str(b), "--abits", str(b), "--first-last-bits", "8"]]
            if a.adaround_iters > 0:
                ptq_cfgs.append(ptq_cfgs[0] + ["--recipe", "standard", "--adaround-iters",
                                               str(a.adaround_iters)])
            for opts in ptq_cfgs:
                r = run([a.nnq, "quantize", path, "-o", f"/tmp/nnq_qat_ptq_{m}.onnx", "--calib-size",
                         str(a.calib_size), "--eval", "--eval-limit", str(a.eval_limit),
                         "--threads", str(a.threads), "--json", "--quiet"] + opts)
                log.write(json.dumps({"model": m, "bits": b, "kind": "ptq", "options": opts, **r}) + "\n")
                if "quant_top1" in r and (row["ptq"] is None or r["quant_top1"] > row["ptq"]):
                    row["ptq"] = r["quant_top1"]
            for meth in methods:
                init = a.init or METHOD_INIT[meth]
                opts = ["--wbits", str(b), "--abits", str(b), "--method", meth, "--init", init,
                        "--epochs", str(a.epochs), "--train-limit", str(a.train_limit)] + a.extra.split()
                r = run([a.nnq, "qat", path, "-o", f"/tmp/nnq_qat_{m}.onnx", "--eval"] + common + opts)
                r["options"] = " ".join(opts)
                log.write(json.dumps({"model": m, "bits": b, "kind": "qat", **r}) + "\n")
                log.flush()
                print(f"{m:20s} W{b}A{b} {meth:5s} "
                      + (f"start {r['start_top1']:.2f} -> {r['export_top1']:.2f} % "
                         f"({r['train_seconds']:.0f} s, {r['images_per_s']:.0f} images/s)"
                         if "export_top1" in r else r["error"]), file=sys.stderr)
                row["cells"][meth] = r
            rows.append(row)

    n_eval = "all 10000" if a.eval_limit == 0 else f"the first {a.eval_limit}"
    n_train = "all 60000" if a.train_limit == 0 else f"the first {a.train_limit}"
    cmdline = " ".join(["/usr/bin/python3 bench/qat_results.py"] + sys.argv[1:])
    lines = [BEGIN, "", "## Quantization-aware training of the shipped models (issue 5)", ""]
    lines.append(f"Produced by `{cmdline}` on {datetime.date.today()}, {cpu_model()}, "
                 f"{os.cpu_count()} CPUs. Top-1 (%) on {n_eval} Fashion-MNIST test images after "
                 f"{a.epochs} epoch(s) of QAT on {n_train} training images (batch 128, Adam, "
                 "cosine schedule; `nnq qat` defaults otherwise), per-channel weights, first and "
                 "last layer at 8 bits. PTQ: `nnq quantize` at the same width"
                 + (" (best of nearest and the standard recipe with AdaRound)"
                    if a.adaround_iters > 0 else " (MSE ranges, nearest rounding)")
                 + ". Each QAT cell: exported top-1 (change from the quantized start).")
    lines.append("")
    head = "| model | W/A | FP32 | PTQ | " + " | ".join(methods) + " |"
    lines += [head, "|---|---|---:|---:|" + "---:|" * len(methods)]
    for row in rows:
        cells = []
        for meth in methods:
            r = row["cells"].get(meth, {})
            if "export_top1" in r:
                cells.append(f"{r['export_top1']:.2f} ({r['export_top1'] - r['start_top1']:+.2f})")
            else:
                cells.append("failed: " + r.get("error", "?").replace("|", "/"))
        fp = f"{row['fp32']:.2f}" if row["fp32"] is not None else "?"
        ptq = f"{row['ptq']:.2f}" if row["ptq"] is not None else "?"
        lines.append(f"| {row['model']} | W{row['bits']}A{row['bits']} | {fp} | {ptq} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Initialisation per method: "
              + ", ".join(f"{k} `--init {a.init or v}`" for k, v in METHOD_INIT.items()
                          if k in methods) + ".", "", END]
    section = "\n".join(lines) + "\n"
    replace_section(os.path.join(ROOT, a.out), BEGIN, END, section)
    print(section)

    blines = [BENCH_SECTION, "",
              f"`{cmdline}` on {datetime.date.today()}, {cpu_model()}: QAT training throughput "
              "(images/s over the training steps, evaluation excluded) and "
              "peak resident memory of the `nnq qat` process (GNU time).", "",
              "| model | W/A | method | images/s | train seconds | peak RSS (MB) |",
              "|---|---|---|---:|---:|---:|"]
    for row in rows:
        for meth in methods:
            r = row["cells"].get(meth, {})
            if "images_per_s" not in r:
                continue
            blines.append(f"| {row['model']} | W{row['bits']}A{row['bits']} | {meth} | "
                          f"{r['images_per_s']:.0f} | {r['train_seconds']:.0f} | "
                          f"{r.get('peak_rss_mb', float('nan')):.0f} |")
    replace_section(os.path.join(ROOT, a.benchmarks), BENCH_SECTION, None,
                    "\n".join(blines) + "\n", heading_mode=True)


if __name__ == "__main__":
    main()
