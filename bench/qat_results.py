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
        [--eval-limit 0] [--threads 2] [--init I] [--extra "--distill 1"]
        [--jsonl bench/results/qat_shipped.jsonl] [--fresh] [--render-only]
        [--note TEXT] [--out docs/results.md] [--benchmarks BENCHMARKS.md]

Runs are logged one JSON line each in --jsonl; a run already there (same model,
width and options) is not repeated, so an interrupted run continues where it
stopped and two processes with different --models can share one log (--fresh
starts a new log). The tables are made from the whole log: runs whose --epochs /
--train-limit differ from this command's (e.g. one longer run added with
--models M --widths 4 --methods lsq+ --train-limit N) go to a second table.
--render-only rewrites the tables from the log without running anything.
Widths are the outer loop, so all W4A4 runs come first.

A smoke run that proves the script works without touching the docs (about a
minute on 2 cores):
    /usr/bin/python3 bench/qat_results.py --models resnet20 --widths 4 --methods lsq \\
        --epochs 1 --train-limit 512 --eval-limit 500 --jsonl /tmp/qat.jsonl --fresh \\
        --out /tmp/qat.md --benchmarks /tmp/qat_bench.md

Each method starts from its usual initialisation: ste from PTQ ranges (MSE, the
white paper's QAT pipeline), lsq and lsq+ from their papers' (`--init lsq`); the
option --init overrides that for all. Top-1 on the Fashion-MNIST test images
(--eval-limit N: the first N). PTQ is ste's starting point (`ptq_top1`: MSE
ranges, CE on the logits, nearest rounding, BN folded), on the same test images;
without ste in --methods, `nnq quantize` at the same width. Beside it, the best
result at the same width in bench/results/ptq_shipped.jsonl (bench/ptq_results.py:
the standard recipe with AdaRound), which was measured on all 10000 test images.
"""
import argparse
import datetime
import json
import os
import sys

from benchlib import ROOT, cpu_model, replace_section, run, write_atomic

BEGIN, END = "<!-- qat-shipped:begin -->", "<!-- qat-shipped:end -->"
BENCH_SECTION = "## QAT training throughput and memory (issue 5)"
SPEED_BEGIN, SPEED_END = "<!-- qat-shipped-speed:begin -->", "<!-- qat-shipped-speed:end -->"
METHOD_INIT = {"ste": "mse", "lsq": "lsq", "lsq+": "lsq"}


def budget(epochs, train_limit):
    return (f"{epochs} epoch(s) x {'all 60000' if train_limit == 0 else train_limit} "
            "training images")


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def run_all(a, log_path):
    """Every (width, model, method) run not already in the log (so an interrupted
    run continues where it stopped, and two processes with different --models can
    share one log); widths outermost, so W4A4 comes first."""
    def done(key):  # re-read: another process may share the log
        return key in {(r["model"], r["bits"], r["kind"], r.get("options", ""))
                       for r in load_jsonl(log_path)}

    log = open(log_path, "a")
    common = ["--test-limit", str(a.eval_limit), "--threads", str(a.threads),
              "--calib-size", str(a.calib_size), "--json", "--quiet"]
    for b in [int(w) for w in a.widths.split(",")]:
        for m in a.models.split(","):
            path = f"models/{m}.onnx"
            if not os.path.exists(os.path.join(ROOT, path)):
                print(f"skip {m}: {path} missing", file=sys.stderr)
                continue
            methods = a.methods.split(",")
            if "ste" not in methods:  # ste's start is PTQ; without it, run PTQ itself
                opts = " ".join(["--wbits", str(b), "--abits", str(b), "--first-last-bits", "8"])
                if not done((m, b, "ptq", opts)):
                    r = run([a.nnq, "quantize", path, "-o", f"/tmp/nnq_qat_ptq_{m}.onnx",
                             "--calib-size", str(a.calib_size), "--eval", "--eval-limit",
                             str(a.eval_limit), "--threads", str(a.threads), "--json",
                             "--quiet"] + opts.split())
                    log.write(json.dumps({**r, "model": m, "bits": b, "kind": "ptq",
                                          "options": opts}) + "\n")
                    log.flush()
            for meth in methods:
                init = a.init or METHOD_INIT[meth]
                opts = " ".join(["--wbits", str(b), "--abits", str(b), "--method", meth, "--init",
                                 init, "--epochs", str(a.epochs), "--train-limit",
                                 str(a.train_limit)] + a.extra.split())
                if done((m, b, "qat", opts)):
                    continue
                r = run([a.nnq, "qat", path, "-o", f"/tmp/nnq_qat_{m}.onnx", "--eval"] + common
                        + opts.split())
                log.write(json.dumps({**r, "model": m, "bits": b, "kind": "qat", "options": opts,
                                      "test_limit": a.eval_limit}) + "\n")
                log.flush()
                print(f"{m:20s} W{b}A{b} {meth:5s} "
                      + (f"start {r['start_top1']:.2f} -> {r['export_top1']:.2f} % "
                         f"({r['train_seconds']:.0f} s, {r['images_per_s']:.0f} images/s)"
                         if "export_top1" in r else r["error"]), file=sys.stderr)


def best_ptq_reference(path):
    """Best earlier PTQ top-1 per (model, W, A) from bench/ptq_results.py's log
    (all 10000 test images; AdaRound recipes included)."""
    best = {}
    for r in load_jsonl(path):
        if "quant_top1" not in r:
            continue
        k = (os.path.basename(r["model"]).replace(".onnx", ""), r["wbits"], r["abits"])
        if k not in best or r["quant_top1"] > best[k][0]:
            best[k] = (r["quant_top1"], r.get("config", r.get("options", "")))
    return best


def other_options(options):
    """The options of a run beyond width, method, init and budget, as inline code."""
    o, out, i = options.split(), [], 0
    fixed = {"--wbits", "--abits", "--method", "--init", "--epochs", "--train-limit"}
    while i < len(o):
        if o[i] in fixed:
            i += 2
            continue
        out.append(o[i])
        i += 1
    return f"`{' '.join(out)}`" if out else "defaults"


def render(a, recs, cmdline):
    """The docs/results.md section and the BENCHMARKS.md table from the log."""
    methods = a.methods.split(",")
    want = {"--epochs": str(a.epochs), "--train-limit": str(a.train_limit)}

    def in_budget(r):
        o = r.get("options", "").split()
        return all(o[o.index(k) + 1] == v for k, v in want.items() if k in o)

    rows = {}
    longer = []
    for r in recs:
        key = (r["model"], r["bits"])
        row = rows.setdefault(key, {"fp32": None, "ptq": None, "cells": {}})
        if r["kind"] == "ptq" and "quant_top1" in r and row["ptq"] is None:  # ste's start wins
            row["ptq"] = r["quant_top1"]
            row["fp32"] = row["fp32"] or r.get("float_top1")
        if r["kind"] != "qat":
            continue
        if not in_budget(r):
            longer.append(r)
            continue
        row["cells"][r.get("method") or r["options"].split("--method ")[1].split()[0]] = r
        if "float_top1" in r:
            row["fp32"] = r["float_top1"]
        if r.get("method") == "ste" and "ptq_top1" in r:
            row["ptq"] = r["ptq_top1"]
    ref = best_ptq_reference(os.path.join(ROOT, "bench", "results", "ptq_shipped.jsonl"))
    n_eval = "all 10000" if a.eval_limit == 0 else f"the first {a.eval_limit}"
    order = {m: i for i, m in enumerate(a.models.split(","))}
    keys = sorted(rows, key=lambda k: (order.get(k[0], 99), -k[1]))
    lines = [BEGIN, "", "## Quantization-aware training of the shipped models (issue 5)", ""]
    lines.append(
        f"Produced by `{cmdline}` on {datetime.date.today()}, {cpu_model()}, {a.threads} "
        f"thread(s). **Budget: {budget(a.epochs, a.train_limit)} per run** (batch 128, Adam "
        "lr 3e-4, quantizer lr 3e-5, cosine schedule, no weight decay: `nnq qat` defaults), "
        "per-channel weights (BN kept in training, folded at export), first and last layer at "
        f"8 bits. Top-1 (%) on {n_eval} Fashion-MNIST test images. PTQ: the same simulation "
        "without training (MSE ranges, CE on the logits, nearest rounding: `ste`'s start), on "
        "the same test images. *PTQ standard*: `bench/ptq_results.py`'s best result at this "
        "width (the standard recipe with AdaRound, 2000 iterations per layer, first/last 8 bits; "
        "on all 10000 test images, so not exactly comparable), where there is one. Each QAT "
        "cell: the exported model's top-1 (change from the quantized start of training)."
        + (f" {a.note}" if a.note else ""))
    lines += ["", "| model | W/A | FP32 | PTQ | PTQ standard | " + " | ".join(methods) + " |",
              "|---|---|---:|---:|---:|" + "---:|" * len(methods)]
    for k in keys:
        row = rows[k]
        cells = []
        for meth in methods:
            r = row["cells"].get(meth, {})
            if "export_top1" in r:
                cells.append(f"{r['export_top1']:.2f} ({r['export_top1'] - r['start_top1']:+.2f})")
            elif r:
                cells.append("failed: " + r.get("error", "?").replace("|", "/"))
            else:
                cells.append("–")
        fp = f"{row['fp32']:.2f}" if row["fp32"] is not None else "–"
        ptq = f"{row['ptq']:.2f}" if row["ptq"] is not None else "–"
        bp = ref.get((k[0], k[1], k[1]))
        bps = f"{bp[0]:.2f}" if bp else "–"
        lines.append(f"| {k[0]} | W{k[1]}A{k[1]} | {fp} | {ptq} | {bps} | " + " | ".join(cells)
                     + " |")
    if longer:
        lines += ["", "Runs with another budget (longer runs where the budget above left a "
                  "target open):", "",
                  "| model | W/A | method | init | budget | other options | test images | FP32 | "
                  "start | simulated at the end | exported | train seconds |",
                  "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in longer:
            o = r["options"].split()
            ep = o[o.index("--epochs") + 1]
            tl = int(o[o.index("--train-limit") + 1])
            if "export_top1" in r:
                sim = f"{r['qat_top1']:.2f}" if "qat_top1" in r else "–"
                lines.append(f"| {r['model']} | W{r['bits']}A{r['bits']} | {r['method']} | "
                             f"`--init {r['init']}` | {budget(ep, tl)} | "
                             f"{other_options(r['options'])}"
                             + (f" ({r['note']})" if r.get("note") else "") + " | "
                             f"{r.get('test_limit') or 10000} | {r['float_top1']:.2f} | "
                             f"{r['start_top1']:.2f} | {sim} | {r['export_top1']:.2f} | "
                             f"{r['train_seconds']:.0f} |")
    # The targets, checked.
    checks = []
    for k in keys:
        c = rows[k]["cells"]
        if k[1] == 4 and "export_top1" in c.get("lsq+", {}) and rows[k]["fp32"] is not None:
            gap = rows[k]["fp32"] - c["lsq+"]["export_top1"]
            checks.append(f"W4A4 lsq+ on {k[0]}: {gap:.2f} points below FP32 "
                          f"({'met' if gap <= 1.0 else 'not met'}: target within 1.0)")
        if k[0] == "mobilenetv2-hswish" and all("export_top1" in c.get(x, {})
                                                for x in ("lsq", "lsq+")):
            d = c["lsq+"]["export_top1"] - c["lsq"]["export_top1"]
            checks.append(f"W{k[1]}A{k[1]} lsq+ vs lsq on mobilenetv2-hswish: {d:+.2f} points "
                          f"({'met' if d > 0 else 'not met'}: target lsq+ above lsq)")
    best_longer = {}
    for r in longer:
        if r.get("bits") == 4 and r.get("method") == "lsq+" and "export_top1" in r:
            gap = r["float_top1"] - r["export_top1"]
            if r["model"] not in best_longer or gap < best_longer[r["model"]][0]:
                best_longer[r["model"]] = (gap, r)
    for m, (gap, r) in best_longer.items():
        o = r["options"].split()
        checks.append(f"W4A4 lsq+ on {m}, best run with another budget "
                      f"({budget(o[o.index('--epochs') + 1], int(o[o.index('--train-limit') + 1]))}"
                      f", {other_options(r['options'])}"
                      + (f", {r['note']}" if r.get("note") else "")
                      + f"): exported {gap:.2f} points below FP32 "
                      f"({'met' if gap <= 1.0 else 'not met'}: target within 1.0)")
    if checks:
        lines += ["", "Targets:", ""] + [f"- {c}" for c in checks]
    lines += ["", "Initialisation per method: "
              + ", ".join(f"{m} `--init {a.init or METHOD_INIT[m]}`" for m in methods) + ".",
              f"Raw JSON of every run: `{a.jsonl}`.", "", END]
    section = "\n".join(lines) + "\n"

    blines = [SPEED_BEGIN, "",
              f"`{cmdline}` on {datetime.date.today()}, {cpu_model()}, {a.threads} thread(s): "
              "QAT training throughput (images/s over the training steps, evaluation excluded) "
              "and peak resident memory of the `nnq qat` process (GNU time), batch 128."
              + (f" {a.note}" if a.note else ""), "",
              "| model | W/A | method | images/s | train seconds | peak RSS (MB) |",
              "|---|---|---|---:|---:|---:|"]
    for k in keys:
        for meth in methods:
            r = rows[k]["cells"].get(meth, {})
            if "images_per_s" in r:
                blines.append(f"| {k[0]} | W{k[1]}A{k[1]} | {meth} | {r['images_per_s']:.0f} | "
                              f"{r['train_seconds']:.0f} | "
                              f"{r.get('peak_rss_mb', float('nan')):.0f} |")
    blines += ["", SPEED_END]
    return section, "\n".join(blines) + "\n"


def write_benchmarks(path, block, begin, end):
    """Put `block` (between begin/end markers) inside the BENCHMARKS.md QAT section,
    creating the section if needed; bench/qat_vs_torch.sh writes its own block there."""
    text = open(path).read() if os.path.exists(path) else "# nnq benchmarks\n"
    if BENCH_SECTION not in text:
        text = text.rstrip("\n") + "\n\n" + BENCH_SECTION + "\n\n" + block
    elif begin in text and end in text:
        pre, rest = text.split(begin, 1)
        text = pre + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        pre, rest = text.split(BENCH_SECTION, 1)
        nxt = rest.find("\n## ")
        body, post = (rest, "") if nxt < 0 else (rest[:nxt + 1], rest[nxt + 1:])
        text = pre + BENCH_SECTION + body.rstrip("\n") + "\n\n" + block + ("\n" + post if post else "")
    write_atomic(path, text)


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
    ap.add_argument("--extra", default="", help="more `nnq qat` options for every run")
    ap.add_argument("--jsonl", default="bench/results/qat_shipped.jsonl",
                    help="run log; runs already in it are not repeated")
    ap.add_argument("--fresh", action="store_true", help="start a new log")
    ap.add_argument("--render-only", action="store_true", help="only write the tables from the log")
    ap.add_argument("--note", default="", help="a sentence for both tables' headers")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--benchmarks", default="BENCHMARKS.md")
    a = ap.parse_args()

    log_path = os.path.join(ROOT, a.jsonl)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    if a.fresh and os.path.exists(log_path):
        os.remove(log_path)
    if not a.render_only:
        run_all(a, log_path)
    argv, skip = [], False
    for x in sys.argv[1:]:  # the command that reproduces the tables, without --note
        if skip or x in ("--fresh", "--render-only", "--note"):
            skip = x == "--note"
            continue
        argv.append(x)
    cmdline = " ".join(["/usr/bin/python3 bench/qat_results.py"] + argv)
    section, speed = render(a, load_jsonl(log_path), cmdline)
    replace_section(os.path.join(ROOT, a.out), BEGIN, END, section)
    write_benchmarks(os.path.join(ROOT, a.benchmarks), speed, SPEED_BEGIN, SPEED_END)
    print(section)


if __name__ == "__main__":
    main()
