#!/usr/bin/python3
"""PyTorch 1.13's own post-training quantization of nnq's fixture models, as the
reference that bench/ptq_vs_torch.sh puts next to `nnq quantize` (issue 4).

For each fixture model (tests/fixtures/models/<model>.pt, loaded into the
architecture of make_models.py, eval mode) and each config, prints one JSON line:

  {"model", "config", "wbits", "abits", "per_channel", "fp32_top1",
   "top1", "method", "sim_top1", "calib_seconds", "eval_seconds", "seconds", ...}

Configs: w8a8-pt (W8A8, per-tensor weights), w8a8-pc (W8A8, per-channel weights),
w4a8-pc (W4A8, per-channel weights).

Quantization settings (the same for every config, FX graph mode, QConfigMapping
with one global QConfig):
  activations  HistogramObserver, quint8, per-tensor affine, full 0..255 range
               (reduce_range=False: this is 8-bit, like nnq's A8);
  weights      MinMaxObserver (per-tensor) or PerChannelMinMaxObserver (axis 0),
               qint8 symmetric; -128..127 at 8 bits, -8..7 at 4 bits.
  calibration  the first 1024 Fashion-MNIST training images with nnq's
               preprocessing (make_models.preprocess), batches of 64: the same
               images nnq calibrates on. No labels used.
  evaluation   top-1 on all 10000 test images.
BatchNorm is folded into the convolutions by FX fusion (eval-mode statistics),
as nnq folds it. What PyTorch does with ReLU6 is kept as is: it does not fuse
Conv+ReLU6, so ReLU6 shares the observer of the conv output before it (and the
adaptive average pool shares its input's), which is PyTorch's own behaviour.

Two ways of running the quantized model, both reported:
  int8 (`top1` for W8A8): prepare_fx -> calibrate -> convert_fx, then the real
      integer kernels. This Debian build of torch has no FBGEMM
      (torch.backends.quantized.supported_engines lacks 'fbgemm'), so the x86
      integer engine used is 'onednn' (oneDNN, AVX2), with the native/fbgemm
      backend config (the same operator patterns).
  fake-quant simulation (`sim_top1`, and `top1` for W4A8): the integer kernels
      only take 8-bit weights, so W4 is simulated. prepare_qat_fx with the
      QConfig's observers wrapped in FakeQuantize (quant_min/quant_max on the
      b-bit grid); the model stays in eval mode, so the fused Conv+BN modules
      use the BN running statistics, i.e. they fake-quantize the folded weight.
      Calibration runs with fake-quant disabled and observers enabled, so every
      observer sees float activations exactly as in prepare_fx PTQ; then the
      observers are frozen, fake-quant enabled, and the model evaluated. For
      W8A8 this sim is also reported as a check of the int8 number.

Usage (from the repo root):
  /usr/bin/python3 bench/torch_ptq.py [--models mnv2s,resnets]
      [--configs w8a8-pt,w8a8-pc,w4a8-pc] [--calib-size 1024] [--eval-limit 0]
      [--save-preds DIR]

--save-preds DIR writes each row's predicted classes (of the model `top1`
counts) as DIR/<model>-<config>.npy (int64, one per test image), and the test
images themselves, preprocessed, as DIR/test_x.npy with the labels in
DIR/test_y.npy, so that bench/ptq_vs_torch.sh can pair them with nnq's
predictions image by image.
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
from torch.ao.quantization import (FakeQuantize, HistogramObserver, MinMaxObserver,
                                   PerChannelMinMaxObserver, QConfig, QConfigMapping,
                                   disable_fake_quant, disable_observer, enable_fake_quant,
                                   enable_observer)
from torch.ao.quantization.backend_config import get_native_backend_config
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "tests", "fixtures", "models")
sys.path.insert(0, MODELS_DIR)
import make_models  # noqa: E402  (architectures, data loading, nnq's preprocessing)

CONFIGS = {
    "w8a8-pt": dict(wbits=8, abits=8, per_channel=False),
    "w8a8-pc": dict(wbits=8, abits=8, per_channel=True),
    "w4a8-pc": dict(wbits=4, abits=8, per_channel=True),
}
CALIB_BATCH = 64
EVAL_BATCH = 500
ENGINE = "onednn"


def weight_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def act_observer(abits):
    return dict(observer=HistogramObserver, dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                quant_min=0, quant_max=(1 << abits) - 1, reduce_range=False)


def weight_observer(wbits, per_channel):
    lo, hi = weight_range(wbits)
    if per_channel:
        return dict(observer=PerChannelMinMaxObserver, dtype=torch.qint8,
                    qscheme=torch.per_channel_symmetric, ch_axis=0, quant_min=lo, quant_max=hi)
    return dict(observer=MinMaxObserver, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                quant_min=lo, quant_max=hi)


def observer_qconfig(cfg):
    """Plain observers: prepare_fx / convert_fx (integer kernels)."""
    a = act_observer(cfg["abits"])
    w = weight_observer(cfg["wbits"], cfg["per_channel"])
    return QConfig(activation=a.pop("observer").with_args(**a),
                   weight=w.pop("observer").with_args(**w))


def fake_quant_qconfig(cfg):
    """The same observers inside FakeQuantize: prepare_qat_fx (simulation)."""
    return QConfig(activation=FakeQuantize.with_args(**act_observer(cfg["abits"])),
                   weight=FakeQuantize.with_args(**weight_observer(cfg["wbits"],
                                                                   cfg["per_channel"])))


def load_model(name):
    model = make_models.BUILDERS[name]()
    state = torch.load(os.path.join(MODELS_DIR, f"{name}.pt"), map_location="cpu")
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def predict(model, x):
    return np.concatenate([model(torch.from_numpy(x[i:i + EVAL_BATCH])).argmax(1).numpy()
                           for i in range(0, len(x), EVAL_BATCH)]).astype(np.int64)


def top1(model, x, y, preds_out=None):
    pred = predict(model, x)
    if preds_out is not None:
        preds_out.append(pred)
    correct = int((pred == y).sum())
    return 100.0 * correct / len(x), correct


@torch.no_grad()
def calibrate(model, calib):
    for i in range(0, len(calib), CALIB_BATCH):
        model(torch.from_numpy(calib[i:i + CALIB_BATCH]))


def run_int8(fp32, cfg, calib):
    t0 = time.time()
    qmap = QConfigMapping().set_global(observer_qconfig(cfg))
    example = (torch.from_numpy(calib[:1]),)
    prepared = prepare_fx(copy.deepcopy(fp32).eval(), qmap, example,
                          backend_config=get_native_backend_config())
    calibrate(prepared, calib)
    quantized = convert_fx(prepared, backend_config=get_native_backend_config()).eval()
    return quantized, time.time() - t0


def run_sim(fp32, cfg, calib):
    t0 = time.time()
    qmap = QConfigMapping().set_global(fake_quant_qconfig(cfg))
    example = (torch.from_numpy(calib[:1]),)
    prepared = prepare_qat_fx(copy.deepcopy(fp32).eval(), qmap, example,
                              backend_config=get_native_backend_config())
    prepared.eval()   # BN running statistics, i.e. the folded weights
    prepared.apply(disable_fake_quant)
    prepared.apply(enable_observer)
    calibrate(prepared, calib)
    prepared.apply(disable_observer)
    prepared.apply(enable_fake_quant)
    return prepared, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mnv2s,resnets")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--calib-size", type=int, default=1024)
    ap.add_argument("--eval-limit", type=int, default=0, help="first N test images (0: all)")
    ap.add_argument("--save-preds", metavar="DIR", help="write per-image predictions here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    if ENGINE not in torch.backends.quantized.supported_engines:
        sys.exit(f"quantized engine {ENGINE} not in {torch.backends.quantized.supported_engines}")
    torch.backends.quantized.engine = ENGINE
    names = [s for s in args.models.split(",") if s]
    configs = [s for s in args.configs.split(",") if s]
    for s in names:
        if s not in make_models.BUILDERS:
            sys.exit(f"unknown model {s}")
    for s in configs:
        if s not in CONFIGS:
            sys.exit(f"unknown config {s} ({', '.join(CONFIGS)})")

    train_u8, _ = make_models.load_split("train")
    test_u8, test_y = make_models.load_split("t10k")
    if args.eval_limit:
        test_u8, test_y = test_u8[:args.eval_limit], test_y[:args.eval_limit]
    calib = make_models.preprocess(train_u8[:args.calib_size])
    test_x = make_models.preprocess(test_u8)
    if args.save_preds:
        os.makedirs(args.save_preds, exist_ok=True)
        np.save(os.path.join(args.save_preds, "test_x.npy"), np.ascontiguousarray(test_x))
        np.save(os.path.join(args.save_preds, "test_y.npy"), np.asarray(test_y, dtype=np.int64))

    for name in names:
        fp32 = load_model(name)
        fp32_top1, _ = top1(fp32, test_x, test_y)
        for cname in configs:
            cfg = CONFIGS[cname]
            t_start = time.time()
            rec = dict(model=name, config=cname, **cfg, calib_size=len(calib), n_eval=len(test_y),
                       engine=ENGINE, torch=torch.__version__, fp32_top1=round(fp32_top1, 2))
            preds = []  # the last one appended is that of `top1`
            sim, rec["sim_calib_seconds"] = run_sim(fp32, cfg, calib)
            t0 = time.time()
            rec["sim_top1"], _ = top1(sim, test_x, test_y, preds)
            rec["sim_eval_seconds"] = time.time() - t0
            if cfg["wbits"] == 8:
                q, rec["calib_seconds"] = run_int8(fp32, cfg, calib)
                t0 = time.time()
                rec["top1"], _ = top1(q, test_x, test_y, preds)
                rec["eval_seconds"] = time.time() - t0
                rec["method"] = f"FX PTQ, int8 kernels ({ENGINE})"
            else:
                rec["top1"] = rec["sim_top1"]
                rec["calib_seconds"] = rec["sim_calib_seconds"]
                rec["eval_seconds"] = rec["sim_eval_seconds"]
                rec["method"] = "FX PTQ, fake-quant simulation"
            rec["seconds"] = time.time() - t_start
            if args.save_preds:
                np.save(os.path.join(args.save_preds, f"{name}-{cname}.npy"), preds[-1])
            for k in list(rec):
                if isinstance(rec[k], float):
                    rec[k] = round(rec[k], 2 if "top1" in k else 3)
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
