#!/usr/bin/python3
"""Training-throughput benchmark, PyTorch side (bench/run_train.sh runs it
beside bench_train, which times nnq the same way).

    train_bench.py --arch A --batch B --threads T [--steps S] [--warmup W] [--lr LR] [--seed N]
    train_bench.py --arch A --check PREFIX

Timing: nnq's architecture A rebuilt from PyTorch modules, trained with
SGD (Nesterov momentum 0.9, weight decay on conv/linear weights only, the
architecture's nnq default) and softmax cross-entropy on shuffled batches of
the first (W + S) * B Fashion-MNIST training images (nnq's preprocessing);
steps W+1 .. W+S are timed. torch.set_num_threads(T), one inter-op thread.
Prints one JSON line like bench_train's. Peak RSS (ru_maxrss) includes the
Python interpreter and PyTorch's libraries; start_rss_mb, measured after
`import torch`, shows how much of it that is.

--check: loads PREFIX.onnx (written by `bench_train --check`) and requires
its initializers to be exactly this model's state dict -- same names and
shapes, nothing missing or extra but nnq's shared ReLU6 bounds -- copies the
weights in, runs a training-mode forward on the first 16 training images
and compares the logits with nnq's (PREFIX.logits.npy): exit 1 unless they
agree (normalised error < 1e-8), so both sides time the same function.
Needs Debian's python3-torch (1.13), python3-numpy and python3-onnx.
"""
import argparse
import gzip
import json
import os
import resource
import sys
import time

from benchlib import rss_now_mb  # noqa: E402  (imports no numpy: start-up RSS stays honest)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

START_RSS_MB = rss_now_mb()

DATA_DIR = os.environ.get("NNQ_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
MEAN, STD, PAD = 0.2860, 0.3530, 2  # src/data/dataset.h
CHECK_IMAGES = 16
MAX_NMSE = 1e-8
# nnq's default weight decay per architecture (src/models/arch.c).
WEIGHT_DECAY = {"tiny": 5e-4, "resnet20": 5e-4, "mobilenetv2": 4e-5, "mobilenetv2-hswish": 4e-5}


# ---------------------------------------------------------------- data

def read_idx(path, magic, count):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[0:4], "big") != magic:
        sys.exit(f"{path}: bad IDX magic")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    if data.shape[0] < count:
        sys.exit(f"{path}: need {count} samples, have {data.shape[0]}")
    return data[:count]


def load_train(count):
    """First `count` training images, preprocessed as nnq does, and labels."""
    u8 = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"), 0x803, count)
    y = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"), 0x801, count)
    x = (u8.astype(np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    x = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)), constant_values=0.0)[:, None]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


# ---------------------------------------------------------------- models
# Mirrors of src/models/*.c: same layers, same state-dict names.

def conv_bn_act(cin, cout, k, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, width in enumerate((16, 32, 64)):
            blocks = []
            for k in range(3):
                blocks.append(BasicBlock(cin, width, 2 if s > 0 and k == 0 else 1))
                cin = width
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_divisible(v):
    """torchvision's _make_divisible(v, 8)."""
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t, act):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else [conv_bn_act(cin, hidden, 1, act=act)]
        layers += [conv_bn_act(hidden, hidden, 3, stride, hidden, act=act),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    # (t, c, n, s) with nnq's strides for 32x32 inputs; width 0.5.
    BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, act):
        super().__init__()
        cin = make_divisible(32 * 0.5)
        features = [conv_bn_act(1, cin, 3, act=act)]
        for t, c, n, s in self.BLOCKS:
            cout = make_divisible(c * 0.5)
            for k in range(n):
                features.append(InvertedResidual(cin, cout, s if k == 0 else 1, t, act))
                cin = cout
        features.append(conv_bn_act(cin, 1280, 1, act=act))
        self.features = nn.Sequential(*features)
        # nnq leaves torchvision's Dropout out; Identity keeps the names.
        self.classifier = nn.Sequential(nn.Identity(), nn.Linear(1280, 10))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


ARCHS = {
    "tiny": Tiny,
    "resnet20": ResNet20,
    "mobilenetv2": lambda: MobileNetV2(nn.ReLU6),
    "mobilenetv2-hswish": lambda: MobileNetV2(nn.Hardswish),
}


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- check

def check(arch, prefix):
    import onnx
    from onnx import numpy_helper

    model = ARCHS[arch]()
    sd = model.state_dict()
    want = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(prefix + ".onnx").graph.initializer}
    extra = sorted(set(inits) - set(want) - {"relu6.min", "relu6.max"})
    missing = sorted(set(want) - set(inits))
    if extra or missing:
        sys.exit(f"{arch}: nnq has {extra or 'nothing'} that PyTorch lacks; "
                 f"PyTorch has {missing or 'nothing'} that nnq lacks")
    for k, v in want.items():
        if tuple(v.shape) != inits[k].shape:
            sys.exit(f"{arch}: {k} is {tuple(v.shape)} in PyTorch, {inits[k].shape} in nnq")
        v.copy_(torch.from_numpy(np.array(inits[k])))
    stats = ("running_mean", "running_var")
    nnq_params = sum(v.size for k, v in inits.items()
                     if k in want and not k.endswith(stats))
    ours = param_count(model)
    model.train()
    x, _ = load_train(CHECK_IMAGES)
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float64)
    ref = np.load(prefix + ".logits.npy").astype(np.float64)
    err = float(np.sum((logits - ref) ** 2) / np.sum(ref ** 2))
    print(json.dumps({"engine": "pytorch", "arch": arch, "params": ours,
                      "nnq_params": nnq_params, "logits_nmse": err}))
    if ours != nnq_params:
        sys.exit(f"{arch}: {ours} parameters in PyTorch, {nnq_params} in nnq")
    if not err < MAX_NMSE:
        sys.exit(f"{arch}: training-mode logits differ from nnq's (nmse {err:.2e} >= {MAX_NMSE})")


# ---------------------------------------------------------------- timing

def timing(a):
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    n = (a.warmup + a.steps) * a.batch
    x_all, y_all = load_train(n)
    model = ARCHS[a.arch]()
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY[a.arch]},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    perm = torch.randperm(n)
    loss_sum, t_start = 0.0, None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t_start = time.perf_counter()
        idx = perm[step * a.batch:(step + 1) * a.batch]
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
    secs = time.perf_counter() - t_start
    loss_mean = loss_sum / (a.warmup + a.steps)
    if not np.isfinite(loss_mean):
        sys.exit(f"{a.arch}: non-finite loss")
    print(json.dumps({
        "engine": "pytorch", "arch": a.arch, "batch": a.batch, "threads": a.threads,
        "steps": a.steps, "warmup": a.warmup, "seconds": round(secs, 3),
        "images_per_s": round(a.steps * a.batch / secs, 2),
        "ms_per_step": round(1e3 * secs / a.steps, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "start_rss_mb": round(START_RSS_MB, 1), "params": param_count(model),
        "loss": round(loss_mean, 4), "torch": torch.__version__}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--check", metavar="PREFIX")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.check:
        check(a.arch, a.check)
    else:
        if a.batch < 1 or a.threads < 1 or a.steps < 1 or a.warmup < 1:
            sys.exit("batch, threads, steps and warmup must be >= 1")
        timing(a)


if __name__ == "__main__":
    main()
