#!/usr/bin/python3
"""Write the "Integer inference (issue 6)" section of BENCHMARKS.md from the
JSON lines bench/int_bench.sh collects (one per measurement: engine, model,
batch, threads and the tool's own JSON under "result") and the output of
bench/qkernel_bench.

  /usr/bin/python3 bench/int_report.py --results R.jsonl --qkernel Q.txt
      --out BENCHMARKS.md --command CMD --load BEFORE AFTER --iters "200 20"
      --calib 256

--out - prints the section instead of writing it.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

from benchlib import ROOT, cpu_model, replace_section

SECTION = "## Integer inference (issue 6)"
ENGINES = ("nnq-int8", "nnq-float", "ort-int8", "ort-float", "torch-int8")
HEAD = {"nnq-int8": "nnq int8", "nnq-float": "nnq float", "ort-int8": "ORT int8",
        "ort-float": "ORT float", "torch-int8": "PyTorch int8"}
AVX2_PEAK = 64  # MACs/cycle: vpmaddubsw, 2 per cycle x 32 u8*s8 pairs


def sh(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def ips(r):
    return r.get("images_per_s")


def lat(r, p):
    return r.get(f"latency_ms_p{p}", r.get(f"p{p}_ms"))


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def num(v, fmt="{:.0f}"):
    return fmt.format(v) if v is not None else "–"


def kernel_rows(text):
    """Rows of qkernel_bench's table: (layer, wbits, kernel, MMACs, us, MAC/cyc, MAC/tsc)."""
    rows = []
    pat = re.compile(r"^(.*?)\s+(\d+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            rows.append((m.group(1).strip(), int(m.group(2)), m.group(3),
                         *(float(m.group(i)) for i in range(4, 8))))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--qkernel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--iters", default="200 20")
    ap.add_argument("--calib", default="256")
    a = ap.parse_args()

    recs = [json.loads(line) for line in open(a.results) if line.strip()]
    models = []
    for r in recs:
        if r["model"] not in models:
            models.append(r["model"])
    timed = {(r["engine"], r["model"], r["batch"], r["threads"]): r["result"]
             for r in recs if r["engine"] in ENGINES}
    checks = {r["model"]: r["result"] for r in recs if r["engine"] == "check"}
    sizes = {r["model"]: r["result"] for r in recs if r["engine"] == "sizes"}
    prep = {r["model"]: r["result"] for r in recs if r["engine"] == "torch-prepare"}
    configs = sorted({(k[2], k[3]) for k in timed})
    ort_version = next((r.get("ort_version") for k, r in timed.items()
                        if k[0].startswith("ort") and r.get("ort_version")), "?")
    tp = next(iter(prep.values()), {})
    flags = cpu_flags()
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags)
    commit = sh(["git", "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"])
    commit += " + uncommitted changes" if dirty and dirty != "?" else ""
    rel = os.path.relpath(a.results, ROOT)
    rel = a.results if rel.startswith("..") else rel
    it1, itn = (a.iters.split() + ["20"])[:2]
    kernels = os.environ.get("NNQ_KERNELS") or "chosen at run time (vnni with AVX-512 VNNI, else avx2)"
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "NNQ_KERNELS")
                    if os.environ.get(k))

    out = [SECTION, ""]
    out.append("nnq's integer engine (`nnq bench --engine int` on the W8A8 QDQ model) against nnq's "
               "float executor on the float model, ONNX Runtime on the **same QDQ file** and on the "
               "float model, and PyTorch 1.13's own int8 model (FX post-training quantization of the "
               "same float weights), all in one run on one machine. Ratios above 1 mean nnq int8 is "
               "faster.")
    out.append("")
    out.append(f"- Date: {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M')}Z; nnq commit {commit}")
    out.append(f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs ({isa}); load average "
               f"(1/5/15 min) before: {a.load[0]}, after: {a.load[1]}")
    out.append(f"- Command: `{a.command}` from the repo root (`make bench-int` runs "
               f"`bench/int_bench.sh build/nnq`){'; environment: ' + env if env else ''}. "
               f"Raw JSON lines: `{rel}`")
    out.append(f"- Versions: nnq Release build ({sh(['cc', '--version']).splitlines()[0]}), "
               f"int8 kernels {kernels}; onnxruntime-node {ort_version} "
               f"(Node {sh(['node', '--version'])}), CPU provider, intraOpNumThreads = T, "
               f"interOpNumThreads = 1, all graph optimisations; PyTorch {tp.get('torch', '?')}, "
               f"quantized engine {tp.get('quant_engine', '?')} (this Debian torch has no FBGEMM), "
               "TorchScript (scripted, frozen), torch.set_num_threads(T), one inter-op thread")
    out.append(f"- Models: `nnq quantize MODEL -o Q.onnx --wbits 8 --abits 8 --calib-size {a.calib}` "
               "(per-channel int8 weights, uint8 activations, default ranges). PyTorch: "
               "bench/torch_int_bench.py, FX PTQ (per-channel symmetric qint8 weights, quint8 "
               f"HistogramObserver activations, {a.calib} calibration images) of the fixtures' "
               "PyTorch state dicts (mnv2s, resnets) or, for nnq's shipped models, of a torch module "
               "built node by node from the float ONNX weights (conversion checked below)")
    out.append(f"- Method (`nnq bench`'s, for every engine): a fixed-seed random input [B,1,32,32]; "
               f"10 untimed runs at batch 1 (3 at batch 64), then {it1} timed runs at batch 1 "
               f"({itn} at batch 64); images/s = images / total time of the timed runs; latency = "
               "wall time of one run, nearest-rank percentiles. Threads T: nnq's --threads and "
               "OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = T. The five engines run back to back per "
               "configuration. ORT's times include its Node binding (~0.01 ms per run), PyTorch's "
               "its Python call. On a shared machine compare within a row; absolute numbers "
               "(and 2-thread numbers most) move with the load.")
    out.append("")

    out.append(f"Correctness on the first {next(iter(checks.values()), {}).get('n', '?')} test images "
               "(nmse = mse(a, b) / mse(b, 0) against the second; agreement = same argmax). nnq int8 "
               "and ORT int8 run the same QDQ file but are not bit-identical: ORT requantizes with its "
               "own float multipliers and rounding, nnq with fixed-point multipliers "
               "(tests/test_ort_int8_top1.sh checks top-1 on the whole test set). The PyTorch float "
               "column checks that PyTorch's float model is nnq's; PyTorch int8 is PyTorch's own "
               "quantization of it (FX keeps ReLU6 unfused, so it shares the observer of the conv "
               "output before it, which costs the ReLU6 models accuracy).")
    out.append("")
    out.append("| model | nnq int8 vs ORT int8: nmse | agreement | nnq int8 vs nnq float: nmse | "
               "agreement | PyTorch float vs nnq float: nmse | PyTorch int8 vs nnq float: nmse "
               "| agreement |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in models:
        c = checks.get(m)
        if not c:
            continue
        out.append(f"| {m} | {c['nnq_vs_ort_int8_nmse']:.1e} | {100 * c['nnq_vs_ort_int8_agree']:.1f}% "
                   f"| {c['nnq_int8_vs_float_nmse']:.1e} | {100 * c['nnq_int8_vs_float_agree']:.1f}% "
                   f"| {c['torch_float_vs_nnq_float_nmse']:.1e} "
                   f"| {c['torch_int8_vs_float_nmse']:.1e} "
                   f"| {100 * c['torch_int8_vs_float_agree']:.1f}% |")
    out.append("")
    out.append("Model bytes on disk: the float ONNX, the W8A8 QDQ ONNX (int8 weights as "
               "initializers) and the lowered integer program (`nnq lower`, .nnqi).")
    out.append("")
    out.append("| model | float | QDQ | .nnqi | .nnqi / float |")
    out.append("|---|---:|---:|---:|---:|")
    for m in models:
        s = sizes.get(m)
        if s:
            out.append(f"| {m} | {s['float']:,} | {s['qdq']:,} | {s['nnqi']:,} | "
                       f"{s['nnqi'] / s['float']:.3f} |")
    out.append("")

    out.append("Throughput (images/s):")
    out.append("")
    out.append("| model | batch | threads | " + " | ".join(HEAD[e] for e in ENGINES)
               + " | nnq-int8/ORT-int8 | nnq-int8/nnq-float | nnq-int8/PyTorch-int8 |")
    out.append("|---|---:|---:|" + "---:|" * (len(ENGINES) + 3))
    wins_ort = wins_float = n_rows = 0
    for m in models:
        for b, t in configs:
            r = {e: timed.get((e, m, b, t), {}) for e in ENGINES}
            if not r["nnq-int8"]:
                continue
            v = {e: ips(r[e]) for e in ENGINES}
            n_rows += 1
            wins_ort += bool(v["nnq-int8"] and v["ort-int8"] and v["nnq-int8"] > v["ort-int8"])
            wins_float += bool(v["nnq-int8"] and v["nnq-float"] and
                               v["nnq-int8"] >= 2 * v["nnq-float"])
            out.append(f"| {m} | {b} | {t} | " + " | ".join(num(v[e]) for e in ENGINES)
                       + f" | {ratio(v['nnq-int8'], v['ort-int8'])}"
                       + f" | {ratio(v['nnq-int8'], v['nnq-float'])}"
                       + f" | {ratio(v['nnq-int8'], v['torch-int8'])} |")
    out.append("")
    out.append(f"The issue's aims, in this run: nnq int8 faster than ORT int8 in {wins_ort} of "
               f"{n_rows} configurations; at least 2x nnq float in {wins_float} of {n_rows}.")
    out.append("")
    out.append("Latency at batch 1, ms (p50 / p99):")
    out.append("")
    out.append("| model | threads | " + " | ".join(HEAD[e] for e in ENGINES) + " |")
    out.append("|---|---:|" + "---:|" * len(ENGINES))
    for m in models:
        for b, t in configs:
            if b != 1 or not timed.get(("nnq-int8", m, b, t)):
                continue
            cells = []
            for e in ENGINES:
                r = timed.get((e, m, b, t), {})
                p50, p99 = lat(r, 50), lat(r, 99)
                cells.append(f"{p50:.3f} / {p99:.3f}" if p50 is not None else "–")
            out.append(f"| {m} | {t} | " + " | ".join(cells) + " |")
    out.append("")

    qtext = open(a.qkernel).read().rstrip("\n")
    rows = [r for r in kernel_rows(qtext) if r[1] == 8 and not r[2].startswith("ref")]
    isas = []  # kernel families in the order qkernel_bench prints them (avx2, vnni, ...)
    for r in rows:
        if r[2].split("-")[0] not in isas:
            isas.append(r[2].split("-")[0])
    out.append("Int8 kernels on the largest convolutions (`bench/qkernel_bench --bits 8`: one "
               "thread, batch 1, best time per layer; MACs per core cycle, the clock measured by "
               "dependent adds). The issue's reference is the AVX2 peak of "
               f"{AVX2_PEAK} MACs/cycle (vpmaddubsw: 2 per cycle x 32 u8 x s8 products, before the "
               "adds that widen and accumulate); every kernel family is shown against it. nnq "
               "runs the fastest family the CPU has.")
    out.append("")
    if rows:
        by = {(r[0], r[2].split("-")[0]): r for r in rows}
        layers = list(dict.fromkeys(r[0] for r in rows))
        out.append("| layer | MMACs | " + " | ".join(f"{i} kernel | MACs/cycle | of {AVX2_PEAK}"
                                                     for i in isas) + " |")
        out.append("|---|---:|" + "---|---:|---:|" * len(isas))
        for name in layers:
            cells = []
            for i in isas:
                r = by.get((name, i))
                cells.append(f"{r[2]} | {r[5]:.1f} | {100 * r[5] / AVX2_PEAK:.0f}%" if r
                             else "– | – | –")
            mm = next(r[3] for r in rows if r[0] == name)
            out.append(f"| {name} | {mm:.2f} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("Output of that run:")
    out.append("")
    out.append("```")
    out.append(qtext)
    out.append("```")
    out.append("")
    section = "\n".join(out)
    if a.out == "-":
        sys.stdout.write(section)
    else:
        replace_section(a.out, SECTION, None, section, heading_mode=True)
        print(f"wrote '{SECTION[3:]}' in {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
