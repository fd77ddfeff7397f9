#!/usr/bin/env node
// Float-inference benchmark, ONNX Runtime side: the same measurement as
// bench_float.c, on ORT's CPU execution provider (onnxruntime-node).
//
//   node ort_bench.js --model M.onnx --batch B --threads T [--seconds S]
//                     [--warmup S] [--seed N] [--check PREFIX [--max-nmse E]]
//                     [--iters N [--warmup-runs W]]
//
// Session: intraOpNumThreads = T, interOpNumThreads = 1, all graph
// optimisations, sequential execution. Prints one JSON line like
// bench_float. With --iters, the measurement is `nnq bench`'s instead of a
// timed span: W untimed runs (default 10 at batch 1, else 3), then exactly
// N timed runs (bench/int_bench.sh). With --check, the timing is skipped: the input batch in
// PREFIX.input.f32 (written by bench_float --dump) is run once and the
// logits compared with PREFIX.logits.f32; the line then carries "nmse",
// and the exit status is 3 if it is not below --max-nmse (default 1e-8).
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { batch: 1, threads: 1, seconds: 2.5, warmup: 0.5, seed: 1234, 'max-nmse': 1e-8,
    iters: 0, 'warmup-runs': -1 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (v === undefined || !['model', 'batch', 'threads', 'seconds', 'warmup', 'seed', 'check',
      'max-nmse', 'iters', 'warmup-runs'].includes(k)) {
      throw new Error('usage: ort_bench.js --model M.onnx --batch B --threads T [--seconds S]'
        + ' [--warmup S] [--seed N] [--check PREFIX [--max-nmse E]] [--iters N [--warmup-runs W]]');
    }
    o[k] = ['model', 'check'].includes(k) ? v : Number(v);
  }
  if (!o.model) throw new Error('ort_bench.js: --model is required');
  return o;
}

// Mirror of fill_input() in bench_float.c: xorshift32, uniform in [-1, 2).
function fillInput(x, seed) {
  let s = (seed >>> 0) || 1;
  for (let i = 0; i < x.length; i++) {
    s = (s ^ (s << 13)) >>> 0;
    s = (s ^ (s >>> 17)) >>> 0;
    s = (s ^ (s << 5)) >>> 0;
    x[i] = Math.fround(Math.fround((s >>> 8) * (3.0 / 16777216.0)) - 1.0);
  }
}

function readF32(file) {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

// Normalised error mse(a, b) / mse(b, 0), as tests/check.h's check_nmse.
function nmse(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return num / den;
}

function percentile(sorted, p) {
  let k = Math.ceil((p / 100) * sorted.length - 1e-6);
  k = Math.min(Math.max(k, 1), sorted.length);
  return sorted[k - 1];
}

const nowS = () => Number(process.hrtime.bigint()) * 1e-9;

async function main() {
  const o = parseArgs(process.argv);
  const session = await ort.InferenceSession.create(o.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const inName = session.inputNames[0];
  const outName = session.outputNames[0];
  const meta = session.inputMetadata[0];
  // Declared input shape with symbolic (batch) dims set to B.
  const tail = meta.shape.slice(1).map((d) => (typeof d === 'number' ? d : o.batch));
  const perImage = tail.reduce((a, b) => a * b, 1);
  const model = path.basename(o.model).replace(/\.onnx$/, '');

  if (o.check) {
    const x = readF32(`${o.check}.input.f32`);
    const want = readF32(`${o.check}.logits.f32`);
    const batch = x.length / perImage;
    const feeds = { [inName]: new ort.Tensor('float32', x, [batch, ...tail]) };
    const got = (await session.run(feeds))[outName].data;
    if (got.length !== want.length) {
      throw new Error(`${model}: ORT gave ${got.length} logits, nnq ${want.length}`);
    }
    // nnq's logits against ORT's as the reference.
    const err = nmse(want, got);
    const ok = err < o['max-nmse'];
    console.log(JSON.stringify({ engine: 'ort', model, batch, check: true, nmse: err, ok }));
    if (!ok) process.exitCode = 3;
    return;
  }

  const x = new Float32Array(o.batch * perImage);
  fillInput(x, o.seed);
  const feeds = { [inName]: new ort.Tensor('float32', x, [o.batch, ...tail]) };
  const byCount = o.iters > 0;
  if (byCount) {
    const w = o['warmup-runs'] >= 0 ? o['warmup-runs'] : (o.batch === 1 ? 10 : 3);
    for (let i = 0; i < w; i++) await session.run(feeds);
  } else {
    await session.run(feeds);
    const w0 = nowS();
    while (nowS() - w0 < o.warmup) await session.run(feeds);
  }

  const lat = [];
  const start = nowS();
  let end = start;
  while (byCount ? lat.length < o.iters : (lat.length < 10 || end - start < o.seconds)) {
    const t = nowS();
    await session.run(feeds);
    end = nowS();
    lat.push(end - t);
  }
  lat.sort((a, b) => a - b);
  const total = end - start;
  console.log(JSON.stringify({
    engine: 'ort',
    model,
    batch: o.batch,
    threads: o.threads,
    runs: lat.length,
    seconds: Number(total.toFixed(3)),
    images_per_s: Number(((lat.length * o.batch) / total).toFixed(2)),
    p50_ms: Number((1e3 * percentile(lat, 50)).toFixed(4)),
    p99_ms: Number((1e3 * percentile(lat, 99)).toFixed(4)),
    ort_version: ort.env.versions ? ort.env.versions.node : undefined,
  }));
}

main().catch((err) => {
  console.error(err && err.message ? err.message : err);
  process.exit(1);
});
