#!/usr/bin/env node
// Run an ONNX model in ONNX Runtime (CPU) on one float32 .npy and write the
// first output as a float32 .npy: the peer side of tests/test_ort_export.sh
// and tests/test_ort_int8_top1.sh.
//
//   node tests/ort/run_model.js MODEL.onnx IN.npy OUT.npy [--threads T] [--batch B]
//
// --threads: ORT's intraOpNumThreads (default 1). --batch: run the rows of
// IN.npy B at a time (default: all in one run), so a whole test set does not
// need one huge activation arena; the outputs are concatenated in order.
// onnxruntime-node comes from bench/node_modules (scripts/deps.sh installs
// it). The session uses all of ORT's graph optimisations, as a user would.
// Exit status: 0 ok, 1 ORT refused the model or failed to run it, 2 usage,
// 3 onnxruntime-node is not installed.
'use strict';

const fs = require('fs');
const path = require('path');

const ORT_DIR = path.join(__dirname, '..', '..', 'bench', 'node_modules', 'onnxruntime-node');

function die(code, msg) {
  process.stderr.write(`run_model.js: ${msg}\n`);
  process.exit(code);
}

// .npy (NEP 1), float32 little-endian C order only: what nnq and numpy write.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${file}: malformed .npy header`);
  if (descr[1] !== '<f4') throw new Error(`${file}: dtype ${descr[1]}, expected <f4 (float32)`);
  if (fortran[1] !== 'False') throw new Error(`${file}: Fortran order is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  if (buf.length - off !== n * 4) {
    throw new Error(`${file}: ${buf.length - off} data bytes for shape (${dims}),`
      + ` expected ${n * 4}`);
  }
  const data = new Float32Array(n);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    // little-endian host: one copy instead of n reads (a test set is 10M floats)
    new Uint8Array(data.buffer).set(buf.subarray(off, off + 4 * n));
  } else {
    for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(off + 4 * i);
  }
  return { dims, data };
}

function writeNpy(file, dims, data) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, file);
}

function parseArgs(argv) {
  const usage = 'usage: node run_model.js MODEL.onnx IN.npy OUT.npy [--threads T] [--batch B]';
  const pos = [];
  const o = { threads: 1, batch: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--threads' || k === '--batch') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) die(2, `${k} wants a positive integer\n${usage}`);
      o[k.slice(2)] = v;
    } else if (k.startsWith('--')) {
      die(2, `unknown option ${k}\n${usage}`);
    } else {
      pos.push(k);
    }
  }
  if (pos.length !== 3) die(2, usage);
  [o.model, o.inFile, o.outFile] = pos;
  return o;
}

async function main() {
  const { model, inFile, outFile, threads, batch } = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(ORT_DIR)) {
    die(3, `onnxruntime-node is not installed in bench/node_modules: run scripts/deps.sh`);
  }
  const ort = require(ORT_DIR);
  const x = readNpy(inFile);
  let session;
  try {
    session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    die(1, `ONNX Runtime refused ${model}: ${String(e.message || e).split('\n')[0]}`);
  }
  if (session.inputNames.length !== 1) {
    die(1, `${model} has ${session.inputNames.length} inputs; expected one`);
  }
  // Row ranges [r0, r1) of the input, one run each: one range without
  // --batch (or for a scalar or empty input).
  const rows = x.dims.length > 0 ? x.dims[0] : 1;
  const ranges = [];
  if (batch > 0 && x.dims.length > 0 && rows > 0) {
    for (let r0 = 0; r0 < rows; r0 += batch) ranges.push([r0, Math.min(r0 + batch, rows)]);
  } else {
    ranges.push([0, rows]);
  }
  const perRow = rows > 0 ? x.data.length / rows : 0;
  const parts = [];
  let outDims = null;
  let outLen = 0;
  for (const [r0, r1] of ranges) {
    const dims = x.dims.length > 0 ? [r1 - r0, ...x.dims.slice(1)] : x.dims;
    const data = ranges.length === 1 ? x.data : x.data.subarray(r0 * perRow, r1 * perRow);
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
    let out;
    try {
      out = await session.run(feeds);
    } catch (e) {
      die(1, `ONNX Runtime failed to run ${model}: ${String(e.message || e).split('\n')[0]}`);
    }
    const y = out[session.outputNames[0]];
    if (y.type !== 'float32') die(1, `${model}: first output is ${y.type}, expected float32`);
    const d = Array.from(y.dims, Number);
    if (outDims === null) outDims = d;
    else outDims[0] += d[0];
    parts.push(y.data);
    outLen += y.data.length;
  }
  let data = parts[0];
  if (parts.length > 1) {
    data = new Float32Array(outLen);
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
  }
  writeNpy(outFile, outDims, data);
}

main().catch((e) => die(1, String(e.message || e)));
