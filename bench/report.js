#!/usr/bin/env node
// Turns bench/run.sh's JSON lines into a console table and the
// "Float inference (issue 2)" section of BENCHMARKS.md (other sections of
// that file are kept as they are).
//
//   node report.js --results R.jsonl --out BENCHMARKS.md|- [--idle "99% / 98%"]
//                  [--seconds S] [--check-batch N] [--max-nmse E]
//                  [--command CMD] [--shown-results PATH]
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const SECTION = '## Float inference (issue 2)';

function parseArgs(argv) {
  const o = {};
  for (let i = 2; i + 1 < argv.length; i += 2) o[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!o.results || !o.out) throw new Error('usage: report.js --results R.jsonl --out FILE|- [...]');
  return o;
}

function cpuInfo() {
  const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const field = (k) => {
    const m = text.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm'));
    return m ? m[1].trim() : '?';
  };
  const flags = field('flags').split(/\s+/);
  const isa = flags.includes('avx512f') ? 'AVX-512' : flags.includes('avx2') ? 'AVX2' : 'no AVX2';
  const n = (text.match(/^processor\s*:/gm) || []).length;
  return `${field('model name')} (family ${field('cpu family')}, model ${field('model')}), `
    + `${n} logical CPUs, ${isa}`;
}

function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch (e) {
    return '?';
  }
}

function ortVersion() {
  const p = path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json');
  return JSON.parse(fs.readFileSync(p, 'utf8')).version;
}

const fmt = (x, d) => (x === undefined ? '-' : x.toFixed(d));
const fmtRate = (x) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

function collect(lines) {
  const checks = [];
  const runs = new Map(); // "model|batch|threads" -> { nnq, ort }
  for (const r of lines) {
    if (r.check) {
      checks.push(r);
      continue;
    }
    const key = `${r.model}|${r.batch}|${r.threads}`;
    if (!runs.has(key)) runs.set(key, { model: r.model, batch: r.batch, threads: r.threads });
    runs.get(key)[r.engine] = r;
  }
  return { checks, rows: [...runs.values()] };
}

function throughputTable(rows) {
  const out = [
    '| model | batch | threads | nnq images/s | ORT images/s | nnq/ORT |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const n = r.nnq && r.nnq.images_per_s;
    const o = r.ort && r.ort.images_per_s;
    out.push(`| ${r.model} | ${r.batch} | ${r.threads} | ${fmtRate(n)} | ${fmtRate(o)} | `
      + `${n && o ? (n / o).toFixed(2) : '-'} |`);
  }
  return out;
}

function latencyTable(rows) {
  const out = [
    '| model | threads | nnq p50 ms | ORT p50 ms | nnq p99 ms | ORT p99 ms |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows.filter((x) => x.batch === 1)) {
    const g = (e, k) => r[e] && r[e][k];
    out.push(`| ${r.model} | ${r.threads} | ${fmt(g('nnq', 'p50_ms'), 3)} | ${fmt(g('ort', 'p50_ms'), 3)} | `
      + `${fmt(g('nnq', 'p99_ms'), 3)} | ${fmt(g('ort', 'p99_ms'), 3)} |`);
  }
  return out;
}

function section(o, checks, rows) {
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace('T', ' ');
  const check = checks.map((c) => `${c.model} ${c.nmse.toExponential(1)}`).join(', ');
  return [
    SECTION,
    '',
    'nnq\'s float executor against ONNX Runtime\'s CPU execution provider, on the same',
    '`.onnx` files, in the same run, on the same machine. **nnq/ORT** is nnq\'s images/s',
    'divided by ORT\'s: above 1 nnq is faster, below 1 it is slower.',
    '',
    `- Date: ${date}`,
    `- CPU: ${cpuInfo()}; CPU idle just before / just after the measurements: ${o.idle || '?'}`,
    '- Reproduce: `make bench` (runs `bench/run.sh build/nnq`). This run: '
      + `\`${o.command || '?'}\`, raw JSON lines in \`${o['shown-results'] || '?'}\``,
    `- nnq: Release build (${tryRun('cc', ['--version']).split('\n')[0]}, -O2), OpenBLAS `
      + `${tryRun('dpkg-query', ['-W', '-f', '${Version}', 'libopenblas0-openmp'])} (OpenMP); `
      + 'executor threads = OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = T',
    `- ORT: onnxruntime-node ${ortVersion()} (Node ${process.version}), CPU provider, `
      + 'intraOpNumThreads = T, interOpNumThreads = 1, graphOptimizationLevel all, sequential',
    `- Method: one fixed-seed random batch of B images [B,1,32,32]; a warm-up of 0.5 s, then`,
    `  back-to-back runs for ${o.seconds || '?'} s; images/s = images run / elapsed time; latency`,
    '  is the wall time of one run (nearest-rank percentiles). nnq and ORT alternate per',
    '  configuration. ORT\'s times include its Node binding (one event-loop turn and an output',
    '  tensor per run: about 0.01 ms per run, measured on a one-Relu model), which only',
    '  weighs at batch 1. Ratios are steadier than absolute numbers: on a shared or virtual',
    '  machine, throughput at 2 threads can move by 2x between runs, for both engines alike.',
    `- Correctness: nmse of nnq's logits against ORT's on one fixed batch of ${o['check-batch'] || '?'}`,
    `  (must be < ${o['max-nmse'] || '?'}): ${check || 'not run'}`,
    '',
    'Throughput:',
    '',
    ...throughputTable(rows),
    '',
    'Latency at batch 1:',
    '',
    ...latencyTable(rows),
    '',
  ].join('\n');
}

// Replace our section (up to the next "## " heading) or append it.
function writeSection(file, text) {
  let doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# nnq benchmarks\n\n';
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === SECTION);
  if (start < 0) {
    doc = `${doc.replace(/\n*$/, '\n\n')}${text}`;
  } else {
    let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
    if (end < 0) end = lines.length;
    const after = lines.slice(end).join('\n');
    doc = [...lines.slice(0, start), text].join('\n') + (after ? `\n${after}` : '');
  }
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, doc);
  fs.renameSync(tmp, file);
}

function main() {
  const o = parseArgs(process.argv);
  const lines = fs.readFileSync(o.results, 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  const { checks, rows } = collect(lines);
  const text = section(o, checks, rows);
  console.log(['', ...throughputTable(rows), '', ...latencyTable(rows), ''].join('\n'));
  for (const c of checks) console.log(`nmse(nnq, ORT) ${c.model}: ${c.nmse.toExponential(2)}`);
  if (o.out !== '-') {
    writeSection(o.out, text);
    console.log(`wrote ${o.out}`);
  }
}

main();
