"""Writes the first N Fashion-MNIST test images, preprocessed as nnq does
(pixel/255, mean 0.2860, std 0.3530, zero-padded to 1x32x32), to OUT/x.npy
and their labels to OUT/y.npy (int64) and OUT/y32.npy (int32), independently
of nnq's own reader, so tests can compare nnq against it.
Usage: fmnist_npy.py OUT N  (NNQ_FASHION_MNIST_DIR overrides the directory)."""
import gzip
import os
import sys

import numpy as np

out, n = sys.argv[1], int(sys.argv[2])
d = os.environ.get("NNQ_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int64)
assert len(x) == len(y) == n, (len(x), len(y), n)
x = (x.astype(np.float32) / np.float32(255) - np.float32(0.2860)) / np.float32(0.3530)
x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32)
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "y.npy"), y)
np.save(os.path.join(out, "y32.npy"), y.astype(np.int32))
