#!/usr/bin/python3
"""PyTorch 1.13's quantization-aware training of nnq's fixture models: the
reference that bench/qat_vs_torch.sh puts next to `nnq qat` (issue 5).

For each fixture model (tests/fixtures/models/<model>.pt in make_models.py's
architecture), width and method, prints one JSON line:

  {"model", "method", "wbits", "abits", "fp32_top1", "start_top1", "top1",
   "train_seconds", "images_per_s", "peak_rss_mb", "steps", ...}

The recipe is nnq qat's (src/cli/cmd_qat.c defaults), done with PyTorch's own
fake-quantization modules:
  quantizers   ste:  torch.ao.quantization.FakeQuantize with MovingAverageMinMax
                     observers (per-channel symmetric weights, per-tensor affine
                     activations), observers running during training (PyTorch's
                     standard QAT), frozen for evaluation;
               lsq:  torch.ao.quantization._learnable_fake_quantize.
                     _LearnableFakeQuantize, scale learned (zero point kept
                     where the observer put it), use_grad_scaling=True;
               lsq+: the same, scale and zero point learned.
               Learned quantizers start from the same MovingAverageMinMax
               observers on the calibration images (static estimate), then
               switch to learning (enable_param_learning).
  placement    nnq's (src/quant/qsim.c) on the BN-folded graph nnq sees in the
               .onnx: the model input, every conv / linear weight (per output
               channel), every conv output after its activation (ReLU, ReLU6),
               every residual add (after its ReLU), average pooling re-quantized
               on its input's grid (the same module), the logits. First and last
               layer at 8 bits: the input, the first conv's weights, the last
               layer's weights, input grid and output.
  BatchNorm    folded into the convolutions before training
               (torch.nn.utils.fusion.fuse_conv_bn_eval), as in the .onnx nnq
               trains: neither side has BN in training.
  training     Adam (betas 0.9/0.999, eps 1e-8), lr 3e-4 for weights and biases,
               3e-5 for scales, 3e-5 / mean(initial activation scale) for zero
               points (nnq's offsets, in grid units), no weight decay; cosine
               schedule per step to 0; batch 128; softmax cross-entropy; the
               first --train-limit training images, reshuffled every epoch; no
               augmentation; calibration on the first --calib-size training
               images (batches of 64).
  evaluation   top-1 on the first --test-limit test images (0: all 10000), with
               nnq's preprocessing (make_models.preprocess).

Timing: train_seconds covers the training steps only (forward, backward,
optimizer); images_per_s = images / train_seconds; peak_rss_mb is the
process's ru_maxrss (interpreter and PyTorch's libraries included;
start_rss_mb, after `import torch`, shows how much that is).

Usage (from the repo root):
  /usr/bin/python3 bench/torch_qat.py [--models mnv2s,resnets] [--widths 4]
      [--methods ste,lsq,lsq+] [--epochs 1] [--train-limit 3072]
      [--test-limit 2000] [--calib-size 1024] [--threads 1] [--no-eval]
"""
import argparse
import copy
import json
import math
import os
import resource
import sys
import time

from benchlib import rss_now_mb  # noqa: E402  (imports no numpy: start-up RSS stays honest)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.ao.quantization import (FakeQuantize, FakeQuantizeBase,  # noqa: E402
                                   MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize  # noqa: E402
from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: E402

START_RSS_MB = rss_now_mb()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "tests", "fixtures", "models")
sys.path.insert(0, MODELS_DIR)
import make_models  # noqa: E402  (architectures, data loading, nnq's preprocessing)

LR, QLR_MULT, BATCH, CALIB_BATCH, EVAL_BATCH, FIRST_LAST_BITS = 3e-4, 0.1, 128, 64, 500, 8


# ---------------------------------------------------------------- quantizers

def act_quantizer(method, bits):
    kw = dict(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=2**bits - 1,
              dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)
    if method == "ste":
        return FakeQuantize(**kw)
    return _LearnableFakeQuantize(use_grad_scaling=True, **kw)


def weight_quantizer(method, bits, channels):
    kw = dict(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-2**(bits - 1),
              quant_max=2**(bits - 1) - 1, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
              ch_axis=0)
    if method == "ste":
        return FakeQuantize(**kw)
    return _LearnableFakeQuantize(channel_len=channels, use_grad_scaling=True, **kw)


class QConv(nn.Module):
    def __init__(self, conv, wq):
        super().__init__()
        self.conv, self.wq = conv, wq

    def forward(self, x):
        c = self.conv
        return F.conv2d(x, self.wq(c.weight), c.bias, c.stride, c.padding, c.dilation, c.groups)


class QLinear(nn.Module):
    def __init__(self, fc, wq):
        super().__init__()
        self.fc, self.wq = fc, wq

    def forward(self, x):
        return F.linear(x, self.wq(self.fc.weight), self.fc.bias)


class QResidual(nn.Module):
    """x + body(x) (InvertedResidual) or relu(body(x) + shortcut(x)) (BasicBlock),
    quantized after the add (and its ReLU)."""

    def __init__(self, body, shortcut, relu, aq):
        super().__init__()
        self.body, self.shortcut, self.relu, self.aq = body, shortcut, relu, aq

    def forward(self, x):
        y = self.body(x) + (self.shortcut(x) if self.shortcut is not None else x)
        return self.aq(F.relu(y) if self.relu else y)


class QNet(nn.Module):
    def __init__(self, in_q, features, pool_q, fc, out_q):
        super().__init__()
        self.in_q, self.features, self.pool_q, self.fc, self.out_q = \
            in_q, features, pool_q, fc, out_q

    def forward(self, x):
        x = self.features(self.in_q(x))
        # Average pooling re-quantized on its input's grid: the same quantizer.
        x = self.pool_q(F.adaptive_avg_pool2d(x, 1))
        return self.out_q(self.fc(torch.flatten(x, 1)))


def quantize_seq(seq, method, bits):
    """A BN-folded Sequential with a weight quantizer on each conv and an
    activation quantizer after each conv (after its activation, if one follows)."""
    mods = [m for m in seq if not isinstance(m, (nn.Identity, nn.BatchNorm2d))]
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            out.append(QConv(m, weight_quantizer(method, bits, m.out_channels)))
            if not (i + 1 < len(mods) and isinstance(mods[i + 1], (nn.ReLU, nn.ReLU6))):
                out.append(act_quantizer(method, bits))
        elif isinstance(m, (nn.ReLU, nn.ReLU6)):
            out.append(m)
            out.append(act_quantizer(method, bits))
        elif isinstance(m, make_models.InvertedResidual):
            body = quantize_seq(m.body, method, bits)
            if m.residual:  # the branch's output and the add's are both quantized
                out.append(QResidual(body, None, False, act_quantizer(method, bits)))
            else:
                out.append(body)
        elif isinstance(m, make_models.BasicBlock):
            body = quantize_seq(m.body, method, bits)
            sc = None
            if isinstance(m.shortcut, nn.Sequential):
                sc = quantize_seq(m.shortcut, method, bits)
            out.append(QResidual(body, sc, True, act_quantizer(method, bits)))
        else:
            raise SystemExit(f"torch_qat.py: no quantization rule for {type(m).__name__}")
    return nn.Sequential(*out)


def fold_bn(module):
    """Fold every Conv2d + BatchNorm2d pair of every Sequential (eval statistics)."""
    for child in module.children():
        fold_bn(child)
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                module[i + 1] = nn.Identity()


def last_act(features):
    m = features[-1]
    return m if isinstance(m, FakeQuantizeBase) else m.aq


def set_last_act(features, q):
    if isinstance(features[-1], FakeQuantizeBase):
        features[-1] = q
    else:
        features[-1].aq = q


def build_qat(model, method, bits):
    """The QAT model of a BN-folded fixture model: nnq's placement, first and
    last layer at 8 bits."""
    features = quantize_seq(model.features, method, bits)
    first = features[0]
    first.wq = weight_quantizer(method, FIRST_LAST_BITS, first.conv.out_channels)
    # The fc's input grid is the pool's, i.e. the last feature quantizer's.
    set_last_act(features, act_quantizer(method, FIRST_LAST_BITS))
    fc = QLinear(model.fc, weight_quantizer(method, FIRST_LAST_BITS, model.fc.out_features))
    return QNet(act_quantizer(method, FIRST_LAST_BITS), features, last_act(features), fc,
                act_quantizer(method, FIRST_LAST_BITS))


def quantizers(model):
    return [m for m in model.modules() if isinstance(m, FakeQuantizeBase)]


# ---------------------------------------------------------------- run

def top1(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            out = model(x[i:i + EVAL_BATCH])
            correct += int((out.argmax(1) == y[i:i + EVAL_BATCH]).sum())
    return 100.0 * correct / len(x)


def calibrate(model, method, calib):
    """Observers see the calibration images with fake quantization off; then
    ste trains with observers running, lsq / lsq+ learn from the estimate."""
    qs = quantizers(model)
    for q in qs:
        if method == "ste":
            q.disable_fake_quant()
            q.enable_observer()
        else:
            q.enable_static_observation()
    model.train()
    with torch.no_grad():
        for i in range(0, len(calib), CALIB_BATCH):
            model(calib[i:i + CALIB_BATCH])
    for q in qs:
        if method == "ste":
            q.enable_fake_quant()
        else:
            q.enable_param_learning()
            if method == "lsq":
                q.zero_point.requires_grad = False


def set_observers(model, on):
    for q in quantizers(model):
        if isinstance(q, FakeQuantize):
            q.enable_observer(on)


def param_groups(model, method):
    qs = quantizers(model)
    qids = {id(p) for q in qs for p in q.parameters()}
    weights = [p for p in model.parameters() if id(p) not in qids]
    groups = [{"params": weights, "lr": LR}]
    if method != "ste":
        qlr = LR * QLR_MULT
        groups.append({"params": [q.scale for q in qs], "lr": qlr})
        if method == "lsq+":
            acts = [q for q in qs if q.qscheme == torch.per_tensor_affine]
            mean_s = float(torch.cat([q.scale.detach() for q in acts]).mean())
            groups.append({"params": [q.zero_point for q in acts], "lr": qlr / mean_s})
    return groups


def train(model, method, x, y, epochs, seed):
    opt = torch.optim.Adam(param_groups(model, method), betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.0)
    steps_per_epoch = (len(x) + BATCH - 1) // BATCH
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / total)))
    gen = torch.Generator().manual_seed(seed)
    seconds, images, loss_sum = 0.0, 0, 0.0
    for _ in range(epochs):
        model.train()
        set_observers(model, True)
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = x[idx], y[idx]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            seconds += time.perf_counter() - t0
            images += len(idx)
            loss_sum += float(loss)
    set_observers(model, False)  # frozen ranges for evaluation
    return seconds, images, total, loss_sum / max(total, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mnv2s,resnets")
    ap.add_argument("--widths", default="4")
    ap.add_argument("--methods", default="ste,lsq,lsq+")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=3072)
    ap.add_argument("--test-limit", type=int, default=2000, help="first N test images (0: all)")
    ap.add_argument("--calib-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-eval", action="store_true", help="timing only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    for s in a.models.split(","):
        if s not in make_models.BUILDERS:
            sys.exit(f"unknown model {s}")

    train_u8, train_y = make_models.load_split("train")
    n = a.train_limit or len(train_u8)
    x = torch.from_numpy(make_models.preprocess(train_u8[:n]))
    y = torch.from_numpy(train_y[:n])
    calib = torch.from_numpy(make_models.preprocess(train_u8[:a.calib_size]))
    test_u8, test_y = make_models.load_split("t10k")
    if a.test_limit:
        test_u8, test_y = test_u8[:a.test_limit], test_y[:a.test_limit]
    tx, ty = torch.from_numpy(make_models.preprocess(test_u8)), torch.from_numpy(test_y)

    for name in a.models.split(","):
        fp32 = make_models.BUILDERS[name]()
        fp32.load_state_dict(torch.load(os.path.join(MODELS_DIR, f"{name}.pt"),
                                        map_location="cpu"))
        fp32.eval()
        fold_bn(fp32)
        fp32_top1 = None if a.no_eval else top1(fp32, tx, ty)
        for bits in [int(b) for b in a.widths.split(",")]:
            for method in a.methods.split(","):
                torch.manual_seed(a.seed)
                q = build_qat(copy.deepcopy(fp32), method, bits)
                t0 = time.time()
                calibrate(q, method, calib)
                rec = dict(model=name, method=method, wbits=bits, abits=bits,
                           first_last_bits=FIRST_LAST_BITS, per_channel=True, epochs=a.epochs,
                           train_images=n, batch=BATCH, lr=LR, qlr=LR * QLR_MULT,
                           threads=a.threads, torch=torch.__version__, n_eval=len(ty),
                           init_seconds=time.time() - t0, fp32_top1=fp32_top1)
                if not a.no_eval:
                    set_observers(q, False)
                    rec["start_top1"] = top1(q, tx, ty)
                secs, images, steps, loss = train(q, method, x, y, a.epochs, a.seed)
                rec.update(train_seconds=secs, images_per_s=images / secs, steps=steps,
                           train_loss=loss)
                if not a.no_eval:
                    rec["top1"] = top1(q, tx, ty)
                rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                rec["start_rss_mb"] = START_RSS_MB
                for k in list(rec):
                    if isinstance(rec[k], float) and k not in ("lr", "qlr"):
                        rec[k] = round(rec[k], 2 if "top1" in k else 4)
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
