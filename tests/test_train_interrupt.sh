#!/bin/sh
# No lost work: `nnq train` interrupted and resumed reaches the same model.
# One small run (the `tiny` architecture, a few thousand images, 3 epochs,
# augmentation on so the RNG state matters) is
#  (a) run uninterrupted to the end;
#  (b) run with --checkpoint-every, killed with SIGKILL mid-epoch once a
#      periodic checkpoint inside epoch 2 exists, resumed with --resume:
#      the final initializers equal (a)'s bit for bit;
#  (c) interrupted with SIGINT mid-epoch without --checkpoint: exit status
#      130, one line naming MODEL.onnx.ckpt, no model written, the
#      checkpoint is mid-epoch, and resuming from it gives (a)'s weights;
#  (d) the same with SIGTERM and an explicit --checkpoint: status 143;
#  (e) during (b)-(d) a watcher polls the output directories: every file
#      visible at an output path is complete (models load with onnx,
#      checkpoints have their magic and a valid CRC); anything else must
#      be a temporary file named PATH.tmp.XXXXXX. Clean exits leave none.
# Usage: sh tests/test_train_interrupt.sh BUILD/nnq (from the repo root).
set -eu

NNQ=${1:?usage: test_train_interrupt.sh PATH/TO/nnq}
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

LIMIT=6000
# Under the sanitizers everything is ~10x slower: fewer images.
[ -n "${NNQ_SANITIZED:-}" ] && LIMIT=800

"$PY" - "$NNQ" "$TMP" "$LIMIT" <<'PYEOF' || fail "interrupt/resume checks failed (see above)"
import os, re, signal, struct, subprocess, sys, threading, time, zlib
import onnx

nnq, tmp, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
batch = 32
steps_per_epoch = (limit + batch - 1) // batch
common = [nnq, "train", "--arch", "tiny", "--limit", str(limit), "--epochs", "3",
          "--batch", str(batch), "--augment", "--no-eval", "--threads", "1", "--seed", "5"]
errors = []

def fail(msg):
    errors.append(msg)
    print("FAIL: " + msg, file=sys.stderr, flush=True)

def weights(path):
    m = onnx.load(path)
    return {t.name: t.SerializeToString() for t in m.graph.initializer}

def checkpoint_header(path):
    """(epoch, step, epoch_step) of a complete checkpoint; raises if it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 76 or data[:8] != b"NNQCKPT\0":
        raise ValueError("bad magic or too short (%d bytes)" % len(data))
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise ValueError("CRC mismatch (%d bytes)" % len(data))
    version, = struct.unpack_from("<I", data, 8)
    epoch, step = struct.unpack_from("<qq", data, 16)
    epoch_step = struct.unpack_from("<q", data, 64)[0] if version >= 2 else 0
    return epoch, step, epoch_step

TEMP = re.compile(r"\.tmp\.[A-Za-z0-9]{6}$")

class Watcher(threading.Thread):
    """Polls run directories; every non-temporary file must be complete."""
    def __init__(self, dirs):
        super().__init__(daemon=True)
        self.dirs, self.stop, self.models, self.checkpoints, self.temps = dirs, False, 0, 0, 0
    def run(self):
        while not self.stop:
            for d in self.dirs:
                for name in os.listdir(d):
                    path = os.path.join(d, name)
                    if TEMP.search(name):
                        self.temps += 1
                        continue
                    try:
                        if name.endswith(".onnx"):
                            if not weights(path):
                                raise ValueError("no initializers")
                            self.models += 1
                        elif name.endswith(".ckpt"):
                            checkpoint_header(path)
                            self.checkpoints += 1
                        else:
                            raise ValueError("unexpected file name")
                    except FileNotFoundError:
                        pass
                    except Exception as e:
                        fail("%s is visible but not a complete file: %s" % (path, e))
            time.sleep(0.001)

def run_dir(name):
    d = os.path.join(tmp, name)
    os.mkdir(d)
    return d

def resume_and_compare(label, d, ckpt, extra=()):
    model = os.path.join(d, "model.onnx")
    r = subprocess.run(common + list(extra) + ["--resume", ckpt, "--quiet", "-o", model],
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail("%s: resumed run failed (%d): %s" % (label, r.returncode, r.stderr.strip()))
    elif weights(model) != ref:
        fail("%s: resumed model differs from the uninterrupted one" % label)
    else:
        print("%s: resumed model equals the uninterrupted one" % label)

t0 = time.time()
# (a) uninterrupted
da = run_dir("a")
subprocess.run(common + ["--quiet", "-o", os.path.join(da, "model.onnx")], check=True)
ref = weights(os.path.join(da, "model.onnx"))

db, dc, dt = run_dir("b"), run_dir("c"), run_dir("t")
watcher = Watcher([db, dc, dt])
watcher.start()

# (b) SIGKILL mid-epoch after a periodic checkpoint inside epoch 2
ck = os.path.join(db, "run.ckpt")
every = ["--checkpoint", ck, "--checkpoint-every", "10"]
p = subprocess.Popen(common + every + ["--quiet", "-o", os.path.join(db, "model.onnx")])
killed = False
while p.poll() is None:
    try:
        epoch, step, epoch_step = checkpoint_header(ck)
    except (FileNotFoundError, ValueError):
        epoch = epoch_step = -1
    if epoch == 1 and 0 < epoch_step <= steps_per_epoch // 2:
        p.send_signal(signal.SIGKILL)
        killed = True
        break
    time.sleep(0.0005)
rc = p.wait()
if not killed or rc != -signal.SIGKILL:
    fail("(b): the run was not killed mid-epoch (killed %s, status %d)" % (killed, rc))
else:
    if os.path.exists(os.path.join(db, "model.onnx")):
        fail("(b): a killed run left a model")
    epoch, step, epoch_step = checkpoint_header(ck)
    print("(b) SIGKILL: checkpoint at epoch %d + %d steps (global step %d)" % (epoch, epoch_step, step))
    if not (epoch == 1 and epoch_step > 0):
        fail("(b): the checkpoint left is not mid-epoch 2 (epoch %d, step %d)" % (epoch, epoch_step))
    resume_and_compare("(b) SIGKILL", db, ck, every)

# (c) SIGINT, (d) SIGTERM: stop after the progress line of a given epoch
def interrupt(label, d, sig, epoch_text, extra, want_rc, want_ckpt):
    model = os.path.join(d, "model.onnx")
    p = subprocess.Popen(common + list(extra) + ["-o", model], stderr=subprocess.PIPE, text=True)
    sent = False
    for line in p.stderr:
        if line.startswith("epoch %s step" % epoch_text):
            p.send_signal(sig)
            sent = True
            break
    rest = p.communicate()[1]
    rc = p.returncode
    if not sent:
        fail("%s: never saw progress of epoch %s" % (label, epoch_text))
        return
    if rc != want_rc:
        fail("%s: exit status %d, expected %d" % (label, rc, want_rc))
    said = [l for l in rest.splitlines() if "interrupted" in l]
    if len(said) != 1 or want_ckpt not in said[0]:
        fail("%s: expected one line naming %s, got %r" % (label, want_ckpt, said))
    else:
        print("%s: %s" % (label, said[0]))
    if os.path.exists(model):
        fail("%s: an interrupted run wrote the model" % label)
    try:
        epoch, step, epoch_step = checkpoint_header(want_ckpt)
    except Exception as e:
        fail("%s: no valid checkpoint at %s: %s" % (label, want_ckpt, e))
        return
    if epoch_step <= 0:
        fail("%s: checkpoint is not mid-epoch (epoch %d, step %d)" % (label, epoch, epoch_step))
    leftovers = [n for n in os.listdir(d) if TEMP.search(n)]
    if leftovers:
        fail("%s: a clean exit left temporary files %s" % (label, leftovers))
    resume_and_compare(label, d, want_ckpt)

interrupt("(c) SIGINT", dc, signal.SIGINT, "2/3", [], 130,
          os.path.join(dc, "model.onnx.ckpt"))
ckt = os.path.join(dt, "run.ckpt")
interrupt("(d) SIGTERM", dt, signal.SIGTERM, "1/3", ["--checkpoint", ckt], 143, ckt)

watcher.stop = True
watcher.join()
print("(e) watcher: %d model and %d checkpoint reads, all complete; %d temporary names seen"
      % (watcher.models, watcher.checkpoints, watcher.temps))
if watcher.models == 0 or watcher.checkpoints == 0:
    fail("(e): the watcher never saw a model and a checkpoint")
print("%.1f s" % (time.time() - t0))
sys.exit(1 if errors else 0)
PYEOF

if [ "$failures" -ne 0 ]; then
    echo "test_train_interrupt: $failures failure(s)" >&2
    exit 1
fi
echo "test_train_interrupt: all checks passed"
