#!/usr/bin/python3
"""PyTorch 1.13 quantized (int8) side of the integer-inference benchmark
(bench/int_bench.sh, issue 6).

Two steps, so that int_bench.sh can interleave PyTorch with the other engines
per configuration without re-quantizing each time:

  prepare --model M.onnx --out DIR/NAME [--pt STATE.pt --arch ARCH]
          [--calib-size 256] [--check X.npy]
      Builds the float model, quantizes it with FX graph-mode PTQ (int8), and
      saves it as TorchScript (DIR/NAME.int8.ts). The float model is either
      the fixture architecture of tests/fixtures/models/make_models.py with
      its PyTorch state dict (--pt, --arch), or, for nnq's shipped models, a
      module built from the ONNX file's own weights (OnnxNet below: Conv,
      BatchNormalization, Relu, Clip, HardSwish, Add, GlobalAveragePool,
      Flatten, Gemm -- the ops of those models). With --check, the float and
      int8 logits of X.npy go to DIR/NAME.torch_float.npy / .torch_int8.npy
      so the report can compare them with nnq's. Prints one JSON line.

  time --ts DIR/NAME.int8.ts --batch B --threads T [--iters N] [--warmup W]
      Times the saved model like `nnq bench`: a fixed-seed random input
      uniform in [-2, 2), W untimed runs, then N timed runs (nearest-rank
      percentiles). torch.set_num_threads(T), one inter-op thread. Prints one
      JSON line: engine, batch, threads, iters, images_per_s,
      latency_ms_p50, latency_ms_p99.

Quantization: FX graph mode (prepare_fx -> calibrate -> convert_fx) with the
native backend config, eval mode so BatchNorm folds into the convolutions;
activations quint8 per-tensor affine (HistogramObserver, full 0..255),
weights qint8 per-channel symmetric (PerChannelMinMaxObserver): W8A8 as
`nnq quantize` makes by default. Calibration: the first --calib-size
Fashion-MNIST training images, nnq's preprocessing. The quantized engine is
'onednn' (x86; this Debian torch has no FBGEMM), else 'qnnpack'.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
from torch.ao.quantization import HistogramObserver, PerChannelMinMaxObserver, QConfig
from torch.ao.quantization import QConfigMapping
from torch.ao.quantization.backend_config import get_native_backend_config
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "models"))
import make_models  # noqa: E402  (fixture architectures, Fashion-MNIST, preprocessing)

ENGINES = ("onednn", "qnnpack")


def pick_engine():
    for e in ENGINES:
        if e in torch.backends.quantized.supported_engines:
            torch.backends.quantized.engine = e
            return e
    sys.exit(f"no quantized engine among {ENGINES}: {torch.backends.quantized.supported_engines}")


class OnnxNet(nn.Module):
    """A float ONNX classifier as torch modules, one per node, run in graph
    order: FX traces it into the same Conv -> BN -> activation chains a hand
    written model gives, so prepare_fx fuses and quantizes it alike."""

    def __init__(self, path):
        super().__init__()
        g = onnx.load(path).graph
        consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        init_names = set(consts)
        self.input = next(v.name for v in g.input if v.name not in init_names)
        self.output = g.output[0].name
        self.steps = []  # (kind, module name or None, input names, output name)
        for i, node in enumerate(g.node):
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            ins = [s for s in node.input if s]
            name = f"n{i}_{node.op_type.lower()}"
            op = node.op_type
            if op == "Constant":
                continue
            if op == "Conv":
                w = consts[ins[1]]
                pads = list(a.get("pads", [0, 0, 0, 0]))
                if pads[:2] != pads[2:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    raise ValueError(f"{path}: {node.name}: asymmetric or auto padding")
                m = nn.Conv2d(w.shape[1] * a.get("group", 1), w.shape[0], w.shape[2:],
                              stride=tuple(a.get("strides", [1, 1])), padding=tuple(pads[:2]),
                              dilation=tuple(a.get("dilations", [1, 1])),
                              groups=a.get("group", 1), bias=len(ins) > 2)
                m.weight.data = torch.from_numpy(w.copy())
                if len(ins) > 2:
                    m.bias.data = torch.from_numpy(consts[ins[2]].copy())
                self._add(name, m, ins[:1], node.output[0])
            elif op == "BatchNormalization":
                c = consts[ins[1]].shape[0]
                m = nn.BatchNorm2d(c, eps=a.get("epsilon", 1e-5))
                m.weight.data = torch.from_numpy(consts[ins[1]].copy())
                m.bias.data = torch.from_numpy(consts[ins[2]].copy())
                m.running_mean.data = torch.from_numpy(consts[ins[3]].copy())
                m.running_var.data = torch.from_numpy(consts[ins[4]].copy())
                self._add(name, m, ins[:1], node.output[0])
            elif op == "Relu":
                self._add(name, nn.ReLU(), ins, node.output[0])
            elif op == "Clip":
                lo = float(consts[ins[1]]) if len(ins) > 1 else a.get("min", -np.inf)
                hi = float(consts[ins[2]]) if len(ins) > 2 else a.get("max", np.inf)
                m = nn.ReLU6() if (lo, hi) == (0.0, 6.0) else nn.Hardtanh(lo, hi)
                self._add(name, m, ins[:1], node.output[0])
            elif op == "HardSwish":
                self._add(name, nn.Hardswish(), ins, node.output[0])
            elif op == "GlobalAveragePool":
                self._add(name, nn.AdaptiveAvgPool2d(1), ins, node.output[0])
            elif op == "Add":
                self.steps.append(("add", None, ins, node.output[0]))
            elif op == "Flatten":
                if a.get("axis", 1) != 1:
                    raise ValueError(f"{path}: {node.name}: Flatten axis {a['axis']}")
                self.steps.append(("flatten", None, ins, node.output[0]))
            elif op == "Gemm":
                if a.get("transB", 0) != 1 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 \
                        or a.get("beta", 1.0) != 1.0:
                    raise ValueError(f"{path}: {node.name}: only Gemm(transB=1) is mapped")
                w = consts[ins[1]]
                m = nn.Linear(w.shape[1], w.shape[0], bias=len(ins) > 2)
                m.weight.data = torch.from_numpy(w.copy())
                if len(ins) > 2:
                    m.bias.data = torch.from_numpy(consts[ins[2]].copy())
                self._add(name, m, ins[:1], node.output[0])
            else:
                raise ValueError(f"{path}: op {op} ({node.name}) has no torch mapping here")

    def _add(self, name, module, ins, out):
        self.add_module(name, module)
        self.steps.append(("module", name, ins, out))

    def forward(self, x):
        env = {self.input: x}
        for kind, name, ins, out in self.steps:
            if kind == "module":
                env[out] = getattr(self, name)(env[ins[0]])
            elif kind == "add":
                env[out] = env[ins[0]] + env[ins[1]]
            else:
                env[out] = torch.flatten(env[ins[0]], 1)
        return env[self.output]


def qconfig():
    act = HistogramObserver.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                      quant_min=0, quant_max=255, reduce_range=False)
    wt = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, ch_axis=0,
                                            qscheme=torch.per_channel_symmetric,
                                            quant_min=-128, quant_max=127)
    return QConfig(activation=act, weight=wt)


@torch.no_grad()
def logits(model, x, batch=256):
    return np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy()
                           for i in range(0, len(x), batch)])


@torch.no_grad()
def cmd_prepare(args):
    torch.set_num_threads(2)
    engine = pick_engine()
    if args.pt:
        model = make_models.BUILDERS[args.arch]()
        model.load_state_dict(torch.load(args.pt, map_location="cpu"))
        source = f"{os.path.relpath(args.pt, ROOT)} in make_models.{args.arch}"
    else:
        model = OnnxNet(args.model)
        source = f"ONNX weights of {os.path.relpath(args.model, ROOT)}"
    model.eval()
    train_u8, _ = make_models.load_split("train")
    calib = make_models.preprocess(train_u8[:args.calib_size])
    t0 = time.time()
    backend = get_native_backend_config()
    prepared = prepare_fx(model, QConfigMapping().set_global(qconfig()),
                          (torch.from_numpy(calib[:1]),), backend_config=backend)
    for i in range(0, len(calib), 64):
        prepared(torch.from_numpy(calib[i:i + 64]))
    q = convert_fx(prepared, backend_config=backend).eval()
    ts = torch.jit.freeze(torch.jit.script(q))
    seconds = time.time() - t0
    out = args.out + ".int8.ts"
    ts.save(out + ".tmp")
    os.replace(out + ".tmp", out)
    rec = dict(engine="torch-int8", model=os.path.basename(args.out), source=source,
               quant_engine=engine, torch=torch.__version__, calib_size=len(calib),
               ptq_seconds=round(seconds, 2), ts=out,
               n_quantized_convs=sum(1 for m in q.modules()
                                     if type(m).__name__ in ("Conv2d", "ConvReLU2d")
                                     and "quantized" in type(m).__module__))
    if args.check:
        x = np.load(args.check)
        np.save(args.out + ".torch_float.npy", logits(model, x))
        np.save(args.out + ".torch_int8.npy", logits(torch.jit.load(out), x))
    print(json.dumps(rec), flush=True)


def percentile(sorted_ms, p):
    k = max(1, min(len(sorted_ms), int(np.ceil(p / 100.0 * len(sorted_ms) - 1e-9))))
    return sorted_ms[k - 1]


@torch.no_grad()
def cmd_time(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    engine = pick_engine()
    model = torch.jit.load(args.ts)
    # nnq bench's input distribution (uniform in [-2, 2)), fixed seed
    x = torch.from_numpy(np.random.default_rng(1234).uniform(
        -2, 2, (args.batch, 1, 32, 32)).astype(np.float32))
    for _ in range(args.warmup):
        model(x)
    lat = []
    t0 = time.perf_counter()
    for _ in range(args.iters):
        a = time.perf_counter()
        model(x)
        lat.append((time.perf_counter() - a) * 1e3)
    total = time.perf_counter() - t0
    lat.sort()
    name = os.path.basename(args.ts)
    name = name[:-len(".int8.ts")] if name.endswith(".int8.ts") else name
    print(json.dumps(dict(engine="torch-int8", model=name, batch=args.batch, threads=args.threads,
                          iters=args.iters, quant_engine=engine,
                          images_per_s=round(args.batch * args.iters / total, 2),
                          latency_ms_p50=round(percentile(lat, 50), 4),
                          latency_ms_p99=round(percentile(lat, 99), 4))), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--model", required=True, help="float ONNX model (weights for OnnxNet)")
    p.add_argument("--out", required=True, help="output prefix DIR/NAME")
    p.add_argument("--pt", help="PyTorch state dict of a fixture model")
    p.add_argument("--arch", help="its make_models architecture (mnv2s, resnets)")
    p.add_argument("--calib-size", type=int, default=256)
    p.add_argument("--check", help="float32 .npy of images: write float and int8 logits")
    t = sub.add_parser("time")
    t.add_argument("--ts", required=True)
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--iters", type=int, default=200)
    t.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    if args.cmd == "prepare":
        if bool(args.pt) != bool(args.arch):
            sys.exit("--pt and --arch go together")
        cmd_prepare(args)
    else:
        cmd_time(args)


if __name__ == "__main__":
    main()
