"""Helpers the bench/*_results.py scripts share: running an nnq command
with --json (plus its peak memory), the CPU's name, atomic writes, and
replacing one generated section of a Markdown file."""
import json
import os
import platform
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    """Run an nnq command with --json; its JSON plus peak_rss_mb (GNU time),
    or {"error": last stderr line}."""
    fd, rss_file = tempfile.mkstemp(prefix="nnq_rss_")
    os.close(fd)
    try:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
        r = json.loads(p.stdout)
        try:
            r["peak_rss_mb"] = int(open(rss_file).read().split()[-1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        return r
    finally:
        os.remove(rss_file)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def replace_section(path, begin, end, section, heading_mode=False):
    """Put `section` between begin/end markers (or, heading_mode, in place of the
    '## ...' section starting with `begin`), appending it if absent."""
    text = open(path).read() if os.path.exists(path) else "# nnq results\n"
    if heading_mode and begin in text:
        pre, rest = text.split(begin, 1)
        nxt = rest.find("\n## ")
        post = rest[nxt + 1:] if nxt >= 0 else ""
        text = pre + section + ("\n" + post if post else "")
    elif not heading_mode and begin in text and end in text:
        pre, rest = text.split(begin, 1)
        post = rest.split(end, 1)[1].lstrip("\n")
        text = pre + section + ("\n" + post if post else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_atomic(path, text)


def rss_now_mb():
    """Resident memory of this process now, in MB (0 where /proc is absent).
    benchlib imports no numpy or torch, so a script can measure its start-up
    RSS before it imports them."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0
