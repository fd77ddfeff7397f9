#!/bin/sh
# Render an nnq report with headless Chromium (Debian's `chromium`, installed
# by scripts/deps.sh --peers) and check that it really rendered:
#   1. a PNG screenshot (1280 px wide, HEIGHT px tall, default 2000) that is
#      not blank: many colours, and a good share of pixels that differ from
#      the background;
#   2. the DOM Chromium built (--dump-dom) has the page's <title> text and
#      as many <svg> charts as the file.
# Usage: scripts/screenshot.sh REPORT.html OUT.png [HEIGHT]
# Exit: 0 rendered, 1 a check failed, 2 usage or chromium missing.
set -eu

HTML=${1:-}
OUT=${2:-}
HEIGHT=${3:-2000}
if [ -z "$HTML" ] || [ -z "$OUT" ] || [ ! -f "$HTML" ]; then
    echo "usage: scripts/screenshot.sh REPORT.html OUT.png [HEIGHT]" >&2
    exit 2
fi
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "screenshot: chromium not found (scripts/deps.sh --peers installs it)" >&2
    exit 2
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

ABS=$(cd "$(dirname "$HTML")" && pwd)/$(basename "$HTML")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# A throw-away profile: no state shared with other runs or the user's browser.
chrome() {
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --no-first-run --user-data-dir="$WORK/profile" "$@" 2>"$WORK/chromium.log"
}

if ! chrome --screenshot="$WORK/shot.png" --window-size="1280,$HEIGHT" "file://$ABS" >/dev/null ||
    [ ! -s "$WORK/shot.png" ]; then
    echo "screenshot: chromium failed to take a screenshot of $HTML" >&2
    tail -5 "$WORK/chromium.log" >&2
    exit 1
fi
if ! chrome --dump-dom "file://$ABS" >"$WORK/dom.html"; then
    echo "screenshot: chromium --dump-dom failed on $HTML" >&2
    exit 1
fi

# The PNG is read with PIL when python3-pil is installed, else decoded with
# zlib + struct (slower, no dependency).
"$PY" - "$WORK/shot.png" "$HTML" "$WORK/dom.html" <<'PYEOF'
import html, re, struct, sys, zlib
from collections import Counter

png, html_path, dom_path = sys.argv[1:4]


def pixels_pil(path):
    """Every other pixel of every other row, as RGB bytes (python3-pil)."""
    from PIL import Image
    im = Image.open(path).convert("RGB")
    w, h = im.size
    small = im.resize((w // 2, h // 2), Image.NEAREST)
    data = small.tobytes()
    return w, h, Counter(data[i:i + 3] for i in range(0, len(data), 3))


def pixels_zlib(path):
    """The same sample with zlib + struct only: 8-bit RGB/RGBA, non-interlaced
    (what Chromium writes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        sys.exit(f"screenshot: unexpected PNG format (depth {depth}, colour type {ctype})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = Counter()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride if f else 0):  # undo the PNG filter of this row
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        if y % 2 == 0:
            for x in range(0, stride, bpp * 2):
                colours[bytes(line[x:x + 3])] += 1
    return w, h, colours


try:
    w, h, colours = pixels_pil(png)
except ImportError:
    w, h, colours = pixels_zlib(png)
total = sum(colours.values())
background, bg_count = colours.most_common(1)[0]
ink = 1 - bg_count / total
print(f"screenshot: {w}x{h}, {len(colours)} colours, {100 * ink:.1f}% non-background pixels",
      file=sys.stderr)
ok = True
if len(colours) < 16 or ink < 0.02:
    print("screenshot: the page rendered blank", file=sys.stderr)
    ok = False

page = open(html_path, encoding="utf-8").read()
dom = open(dom_path, encoding="utf-8", errors="replace").read()
# Compare decoded text: the DOM serializer escapes quotes differently.
title = re.search(r"<title>(.*?)</title>", page, re.S)
got = re.search(r"<title>(.*?)</title>", dom, re.S)
if not title or not got or html.unescape(title.group(1)) != html.unescape(got.group(1)):
    print("screenshot: the rendered DOM lacks the page title", file=sys.stderr)
    ok = False
if dom.count("<svg") != page.count("<svg"):
    print(f"screenshot: {page.count('<svg')} charts in the file, {dom.count('<svg')} rendered",
          file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PYEOF
cp "$WORK/shot.png" "$OUT"
