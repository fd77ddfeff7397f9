#!/usr/bin/python3
"""Write the malformed-input corpus that tests/test_corpus_replay.c replays.

One folder per fuzz target (fuzz/fuzz_entries.h): onnx/, npy/, idx/, qdq/, nnqi/.
A file's prefix says what the replay expects:
  ok-*     a valid input: it must load (and, for onnx and qdq, prepare)
  bad-*    a malformed input: it must be rejected with a one-line message
  crash-*  an input a fuzzer once crashed nnq with (kept by hand, not made
           here): any verdict, but no crash and, on failure, a message
For every valid file this script writes truncated, bit-flipped and
oversized-header variants, plus malformations that only make sense for
that format. Everything is small (the whole corpus stays well under 1 MB).

The ONNX models are nnq's own: the `tiny` architecture trained for one
short epoch and its QDQ export, made with the nnq binary given by --nnq.

Usage (from the repo root):
  /usr/bin/python3 tests/corpus/make_corpus.py [--nnq build/nnq]
It rewrites ok-* and bad-* files and leaves crash-* files alone.
"""
import argparse
import gzip
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
CONFORMANCE = "/usr/include/onnx/backend/test/data/node"
FMNIST = os.environ.get("NNQ_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def write(target, name, data):
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def clean(target):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith(("ok-", "bad-")):
            os.remove(os.path.join(d, f))


def flip(data, offset, bit):
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


def truncations(target, stem, data, ext, points=(0.1, 0.5, 0.9)):
    """Cut the file at fractions of its length, one byte short, and to nothing."""
    for p in points:
        n = int(len(data) * p)
        write(target, f"bad-{stem}-truncated-{n}B{ext}", data[:n])
    write(target, f"bad-{stem}-truncated-last-byte{ext}", data[:-1])
    write(target, f"bad-{stem}-empty{ext}", b"")


# ---- protobuf helpers: offsets of a message's top-level fields ----

def varint(data, i):
    v, shift = 0, 0
    while True:
        b = data[i]
        v |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return v, i
        shift += 7


def fields(data):
    """(field number, wire type, tag offset, value offset, value length)."""
    out, i = [], 0
    while i < len(data):
        tag_at = i
        key, i = varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            start = i
            _, i = varint(data, i)
            out.append((num, wt, tag_at, start, i - start))
        elif wt == 2:
            n, start = varint(data, i)
            out.append((num, wt, tag_at, start, n))
            i = start + n
        elif wt == 1:
            out.append((num, wt, tag_at, i, 8))
            i += 8
        elif wt == 5:
            out.append((num, wt, tag_at, i, 4))
            i += 4
        else:
            raise ValueError("unexpected wire type")
    return out


def field(data, num):
    return next(f for f in fields(data) if f[0] == num)


def set_length(data, tag_at, new_len):
    """Rewrite a length-delimited field's length varint (keeping the payload)."""
    key, start = varint(data, tag_at)
    n, payload = varint(data, start)
    enc = bytearray()
    while True:
        b = new_len & 0x7F
        new_len >>= 7
        enc.append(b | (0x80 if new_len else 0))
        if not new_len:
            break
    return data[:start] + bytes(enc) + data[payload:]


# ---- ONNX models ----

def nnq_models(nnq):
    """The tiny architecture and its QDQ export, made by nnq itself."""
    with tempfile.TemporaryDirectory() as tmp:
        fp, q = os.path.join(tmp, "tiny.onnx"), os.path.join(tmp, "tiny_qdq.onnx")
        subprocess.run([nnq, "train", "--arch", "tiny", "-o", fp, "--epochs", "1", "--limit",
                        "256", "--no-eval", "--threads", "1", "--quiet"], check=True)
        subprocess.run([nnq, "quantize", fp, "-o", q, "--calib-size", "32", "--threads", "1",
                        "--quiet"], check=True)
        return onnx.load(fp), onnx.load(q)


def ser(model):
    return model.SerializeToString()


def copy_model(m):
    c = onnx.ModelProto()
    c.CopyFrom(m)
    return c


def initializer(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def node(m, op, index=0):
    return [n for n in m.graph.node if n.op_type == op][index]


def attr(n, name):
    return next(a for a in n.attribute if a.name == name)


def protobuf_variants(target, stem, data):
    """Byte-level damage to a ModelProto: truncation and structural bit flips."""
    truncations(target, stem, data, ".onnx")
    g = field(data, 7)  # ModelProto.graph
    # The graph's length one byte past the end of the file.
    write(target, f"bad-{stem}-graph-length-past-end.onnx",
          set_length(data, g[2], len(data) - g[3] + 1))
    # ir_version's tag turned into wire type 4 (end group): no such field form.
    ir = field(data, 1)
    write(target, f"bad-{stem}-bitflip-wire-type.onnx", flip(data, ir[2], 2))
    # The first initializer's tag inside the graph: wire type 2 becomes 3
    # (start group), which ONNX never uses.
    init = field(data[g[3]:g[3] + g[4]], 5)
    write(target, f"bad-{stem}-bitflip-initializer-tag.onnx", flip(data, g[3] + init[2], 0))


def onnx_semantic(target, stem, base):
    """Well-formed protobuf, malformed model: limits, shapes, structure."""
    w = base.graph.initializer[0].name

    def variant(name, edit):
        m = copy_model(base)
        edit(m)
        write(target, f"bad-{stem}-{name}.onnx", ser(m))

    # Oversized headers: dims that claim far more than the bytes present.
    def huge_dims(m):
        t = initializer(m, w)
        t.dims[0] = 1 << 40
    variant("oversized-initializer-dims", huge_dims)

    def overflow_dims(m):
        t = initializer(m, w)
        del t.dims[:]
        t.dims.extend([1 << 31] * 4)  # 2^124 elements: overflows int64
    variant("oversized-initializer-overflow", overflow_dims)

    def deep_rank(m):
        t = initializer(m, w)
        del t.dims[:]
        t.dims.extend([1] * 9)
    variant("oversized-initializer-rank", deep_rank)

    def input_rank(m):
        shp = m.graph.input[0].type.tensor_type.shape
        while len(shp.dim) < 9:
            shp.dim.add().dim_value = 1
    variant("oversized-input-rank", input_rank)

    def long_name(m):
        old = m.graph.node[0].name or "n"
        m.graph.node[0].name = old + "x" * 4200
    variant("oversized-node-name", long_name)

    def negative_dim(m):
        initializer(m, w).dims[0] = -8
    variant("negative-initializer-dim", negative_dim)

    def short_raw(m):
        t = initializer(m, w)
        t.raw_data = t.raw_data[:-4]
    variant("initializer-data-short", short_raw)

    def string_tensor(m):
        initializer(m, w).data_type = TensorProto.STRING
    variant("initializer-string-type", string_tensor)

    def external(m):
        t = initializer(m, w)
        t.data_location = TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", "/etc/passwd"
    variant("initializer-external-data", external)

    def opset(m):
        m.opset_import[0].version = 99
    variant("opset-99", opset)

    def no_graph(m):
        m.ClearField("graph")
    variant("no-graph", no_graph)

    def unknown_op(m):
        m.graph.node[1].op_type = "NoSuchOp"
    variant("unknown-op", unknown_op)

    def undefined_input(m):
        m.graph.node[1].input[0] = "nowhere"
    variant("undefined-input", undefined_input)

    def cycle(m):
        m.graph.node[0].input[0] = m.graph.node[2].output[0]
    variant("cycle", cycle)

    def two_producers(m):
        m.graph.node[1].output[0] = m.graph.node[0].output[0]
    variant("two-producers", two_producers)

    def unnamed_output(m):
        m.graph.node[0].output[0] = ""
    variant("unnamed-required-output", unnamed_output)

    def conv_huge_pads(m):
        c = node(m, "Conv")
        a = attr(c, "pads")
        del a.ints[:]
        a.ints.extend([1 << 40] * 4)
    variant("conv-huge-pads", conv_huge_pads)

    def conv_kernel_mismatch(m):
        c = node(m, "Conv")
        a = attr(c, "kernel_shape")
        del a.ints[:]
        a.ints.extend([5, 5])
    variant("conv-kernel-shape-mismatch", conv_kernel_mismatch)


def make_onnx(tiny):
    clean("onnx")
    data = ser(tiny)
    write("onnx", "ok-tiny.onnx", data)
    for case in ("test_conv_with_strides_padding", "test_gemm_all_attributes",
                 "test_maxpool_2d_pads", "test_softmax_axis_1"):
        path = os.path.join(CONFORMANCE, case, "model.onnx")
        if os.path.exists(path):
            write("onnx", f"ok-conformance-{case[5:]}.onnx", open(path, "rb").read())
    write("onnx", "ok-opset9-upgrade.onnx", ser(opset9_model()))
    protobuf_variants("onnx", "tiny", data)
    onnx_semantic("onnx", "tiny", tiny)


def opset9_model():
    """A small opset-9 model, so the corpus covers the import upgrade."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((10, 4 * 6 * 6)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1], name="pad"),
        helper.make_node("Conv", ["p", "w"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Clip", ["c"], ["r"], min=0.0, max=6.0, name="clip"),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("Flatten", ["m"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    g = helper.make_graph(nodes, "opset9",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, fc])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)],
                          producer_name="nnq-corpus")
    m.ir_version = 4
    return m


# ---- QDQ models ----

def make_qdq(qdq):
    clean("qdq")
    data = ser(qdq)
    write("qdq", "ok-tiny-qdq.onnx", data)
    for case in ("test_quantizelinear", "test_dequantizelinear_axis"):
        path = os.path.join(CONFORMANCE, case, "model.onnx")
        if os.path.exists(path):
            write("qdq", f"ok-conformance-{case[5:]}.onnx", open(path, "rb").read())
    protobuf_variants("qdq", "tiny-qdq", data)

    def variant(name, edit):
        m = copy_model(qdq)
        edit(m)
        write("qdq", f"bad-tiny-qdq-{name}.onnx", ser(m))

    dq = node(qdq, "DequantizeLinear")  # per-channel weights, axis 0
    scale, zp = dq.input[1], dq.input[2]

    def scale_len(m):
        t = initializer(m, scale)
        t.dims[0] -= 1
        t.raw_data = t.raw_data[:-4]
    variant("dq-scale-length", scale_len)

    def zp_len(m):
        t = initializer(m, zp)
        t.dims[0] -= 1
        t.raw_data = t.raw_data[:-1]
    variant("dq-zero-point-length", zp_len)

    def axis(m):
        attr(node(m, "DequantizeLinear"), "axis").i = 7
    variant("dq-axis-out-of-range", axis)

    def zp_type(m):
        initializer(m, zp).data_type = TensorProto.UINT8
    variant("dq-zero-point-type", zp_type)

    def scale_type(m):
        t = initializer(m, scale)
        t.data_type = TensorProto.INT32
    variant("dq-scale-int32", scale_type)

    def scale_2d(m):
        t = initializer(m, scale)
        n = t.dims[0]
        del t.dims[:]
        t.dims.extend([1, n])
    variant("dq-scale-2d", scale_2d)

    def q_zp_int32(m):
        q = node(m, "QuantizeLinear")
        t = initializer(m, q.input[2])
        t.data_type = TensorProto.INT32
        t.raw_data = t.raw_data * 4
    variant("q-zero-point-int32", q_zp_int32)

    def q_input_int(m):
        m.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    variant("q-input-uint8", q_input_int)


# ---- .npy ----

def npy_bytes(arr, version=(1, 0)):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


def npy_raw(header, data=b"", version=1):
    """A .npy file with a hand-written header dict (padded, newline-ended)."""
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h + data


def make_npy():
    clean("npy")
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    valid = {
        "f4-nchw": npy_bytes(images),
        "i8-labels": npy_bytes(np.arange(5, dtype=np.int64)),
        "f8-v2": npy_bytes(np.linspace(0, 1, 3), version=(2, 0)),
        "u1-v3": npy_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3), version=(3, 0)),
        "b1-scalar": npy_bytes(np.array(True)),
        "f2-empty": npy_bytes(np.zeros((0, 3), dtype=np.float16)),
    }
    for stem, data in valid.items():
        write("npy", f"ok-{stem}.npy", data)
    base = valid["f4-nchw"]
    truncations("npy", "f4", base, ".npy", points=(0.05, 0.5, 0.9))
    write("npy", "bad-f4-trailing-byte.npy", base + b"\0")
    # Bit flips in the structure: magic, version, header length, dict text, shape.
    hdr = base[10:10 + struct.unpack("<H", base[8:10])[0]]
    write("npy", "bad-f4-bitflip-magic.npy", flip(base, 1, 0))
    write("npy", "bad-f4-bitflip-version.npy", flip(base, 6, 3))
    write("npy", "bad-f4-bitflip-header-length.npy", flip(base, 9, 2))
    write("npy", "bad-f4-bitflip-descr-key.npy", flip(base, 10 + hdr.index(b"descr"), 1))
    write("npy", "bad-f4-bitflip-shape.npy", flip(base, 10 + hdr.index(b"(2,") + 1, 0))
    write("npy", "bad-f4-bitflip-brace.npy", flip(base, 10, 4))
    d = images.tobytes()
    # Oversized headers: sizes the file cannot back, lengths past the end.
    write("npy", "bad-oversized-header-length-v2.npy",
          b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFFF) + b"{}")
    write("npy", "bad-oversized-header-length-v1.npy",
          b"\x93NUMPY\x01\x00" + struct.pack("<H", 0xFFFF) + b"{'descr'")
    write("npy", "bad-oversized-shape.npy",
          npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                  d))
    write("npy", "bad-oversized-shape-overflow.npy",
          npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }"))
    write("npy", "bad-oversized-shape-product.npy",
          npy_raw("{'descr': '<f8', 'fortran_order': False, "
                  "'shape': (4294967296, 4294967296, 4294967296), }"))
    write("npy", "bad-oversized-rank.npy",
          npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", d))
    write("npy", "bad-oversized-descr.npy",
          npy_raw("{'descr': '<f4" + "4" * 200 + "', 'fortran_order': False, 'shape': (2,), }"))
    # Header dicts that are not what NumPy writes.
    for name, header in {
        "big-endian": "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 1, 4, 4), }",
        "fortran": "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1, 4, 4), }",
        "structured": "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (32,), }",
        "object": "{'descr': '|O', 'fortran_order': False, 'shape': (32,), }",
        "no-shape": "{'descr': '<f4', 'fortran_order': False, }",
        "repeated-key": "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (32,), }",
        "negative-dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (-32,), }",
        "not-a-tuple": "{'descr': '<f4', 'fortran_order': False, 'shape': (32), }",
        "escape-in-string": "{'descr': '<f\\4', 'fortran_order': False, 'shape': (32,), }",
        "unterminated": "{'descr': '<f4, 'fortran_order': False, 'shape': (32,), ",
        "not-a-dict": "['descr', '<f4']",
    }.items():
        write("npy", f"bad-header-{name}.npy", npy_raw(header, d))
    write("npy", "bad-header-v1-minor.npy", b"\x93NUMPY\x01\x01" + base[8:])


# ---- IDX (raw and gzip) ----

def make_idx():
    clean("idx")
    labels = images = None
    lp = os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")
    ip = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(lp):
        labels = gzip.open(lp).read()[8:8 + 16]
    if os.path.exists(ip):
        with gzip.open(ip) as f:
            images = f.read(16 + 2 * 28 * 28)[16:]
    if labels is None:  # no dataset installed: the same layout from other bytes
        labels = bytes(range(10)) + bytes(range(6))
    if images is None:
        images = bytes(i % 251 for i in range(2 * 28 * 28))
    lab = b"\0\0\x08\x01" + struct.pack(">I", 16) + labels
    img = b"\0\0\x08\x03" + struct.pack(">III", 2, 28, 28) + images

    def gz(data):
        return gzip.compress(data, mtime=0)

    for stem, data in (("labels", lab), ("images", img)):
        write("idx", f"ok-{stem}.idx", data)
        write("idx", f"ok-{stem}.idx.gz", gz(data))
    write("idx", "ok-rank4.idx", b"\0\0\x08\x04" + struct.pack(">IIII", 1, 2, 3, 4) + bytes(24))
    write("idx", "ok-empty-dim.idx", b"\0\0\x08\x02" + struct.pack(">II", 0, 28))

    truncations("idx", "images", img, ".idx", points=(0.002, 0.01, 0.5))
    write("idx", "bad-images-trailing-byte.idx", img + b"\0")
    write("idx", "bad-images-bitflip-magic.idx", flip(img, 0, 7))
    write("idx", "bad-images-bitflip-type.idx", flip(img, 2, 0))  # 0x09: signed bytes
    write("idx", "bad-images-bitflip-rank.idx", flip(img, 3, 2))  # rank 7
    write("idx", "bad-images-bitflip-dim.idx", flip(img, 7, 0))  # 3 images, 2 present
    write("idx", "bad-images-float-type.idx", b"\0\0\x0d" + img[3:])
    write("idx", "bad-rank-0.idx", b"\0\0\x08\x00" + bytes(4))
    # Oversized headers: a few bytes claiming gigabytes, raw and compressed.
    huge = b"\0\0\x08\x04" + struct.pack(">IIII", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 2) + bytes(8)
    write("idx", "bad-oversized-dims.idx", huge)
    write("idx", "bad-oversized-dims.idx.gz", gz(huge))
    big = b"\0\0\x08\x01" + struct.pack(">I", 0xF0000000) + bytes(64)  # 3.75 GiB claimed
    write("idx", "bad-oversized-claim.idx", big)
    write("idx", "bad-oversized-claim.idx.gz", gz(big))

    g = gz(img)
    # Damaged gzip: cut stream, missing trailer, flipped deflate bit, bad CRC.
    write("idx", "bad-images-gz-truncated-half.idx.gz", g[:len(g) // 2])
    write("idx", "bad-images-gz-no-trailer.idx.gz", g[:-8])
    write("idx", "bad-images-gz-bitflip-deflate.idx.gz", flip(g, len(g) // 2, 3))
    write("idx", "bad-images-gz-bitflip-crc.idx.gz", flip(g, len(g) - 8, 0))
    write("idx", "bad-images-gz-bitflip-size.idx.gz", flip(g, len(g) - 4, 0))
    write("idx", "bad-gz-empty-member.idx.gz", gz(b""))
    write("idx", "bad-gz-header-only.idx.gz", g[:10])


def make_nnqi(nnq, qdq):
    """The tiny QDQ model lowered to a .nnqi by `nnq lower`, then damaged:
    cut short, a bit flipped in each header field and in the payload (the
    CRC-32 catches those), and header sizes that lie."""
    import struct
    clean("nnqi")
    with tempfile.TemporaryDirectory() as tmp:
        q, out = os.path.join(tmp, "tiny_qdq.onnx"), os.path.join(tmp, "tiny.nnqi")
        with open(q, "wb") as f:
            f.write(ser(qdq))
        subprocess.run([nnq, "lower", q, "-o", out, "--quiet"], check=True)
        data = open(out, "rb").read()
    write("nnqi", "ok-tiny.nnqi", data)
    truncations("nnqi", "tiny", data, ".nnqi")
    fields = {"magic": 1, "version": 8, "flags": 12, "stored-size": 16, "raw-size": 24, "crc": 32}
    for name, off in fields.items():
        write("nnqi", f"bad-tiny-bitflip-{name}.nnqi", flip(data, off, 0))
    for frac in (0.2, 0.5, 0.8):
        off = 40 + int((len(data) - 40) * frac)
        write("nnqi", f"bad-tiny-bitflip-payload-{off}.nnqi", flip(data, off, 3))
    huge = bytearray(data)
    huge[24:32] = struct.pack("<Q", 1 << 40)  # inflates to a terabyte, it says
    write("nnqi", "bad-tiny-oversized-raw-size.nnqi", bytes(huge))
    huge = bytearray(data)
    huge[16:24] = struct.pack("<Q", (1 << 64) - 1)
    write("nnqi", "bad-tiny-oversized-stored-size.nnqi", bytes(huge))
    write("nnqi", "bad-tiny-padded.nnqi", data + b"\0" * 16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nnq", default="build/nnq", help="nnq binary (default build/nnq)")
    ap.add_argument("--only", help="one target's folder only (e.g. nnqi)")
    args = ap.parse_args()
    if not os.access(args.nnq, os.X_OK):
        sys.exit(f"make_corpus: {args.nnq} is not an nnq binary (build first or pass --nnq)")
    tiny, qdq = nnq_models(args.nnq)
    makers = {"onnx": lambda: make_onnx(tiny), "qdq": lambda: make_qdq(qdq), "npy": make_npy,
              "idx": make_idx, "nnqi": lambda: make_nnqi(args.nnq, qdq)}
    for name, make in makers.items():
        if args.only in (None, name):
            make()
    total = sum(os.path.getsize(os.path.join(dp, f))
                for dp, _, fs in os.walk(HERE) for f in fs)
    print(f"make_corpus: corpus is {total} bytes")


if __name__ == "__main__":
    main()
