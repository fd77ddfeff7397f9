#!/bin/sh
# The example report of the README: `nnq analyze` on the shipped
# mobilenetv2 at W8A8 with per-tensor weights (the configuration where
# MobileNet's depthwise channel ranges break one-scale-per-tensor and
# cross-layer equalization repairs it), then a headless-Chromium screenshot
# of it, checked to be non-blank with the expected title (screenshot.sh).
# Writes docs/report-mobilenetv2.html, docs/report-mobilenetv2.png (top of the
# page) and docs/report-mobilenetv2-cle.png (the channel-range section; needs
# python3-pil).
# Usage: scripts/report_example.sh [BUILD/nnq]   (needs scripts/deps.sh --peers
# for chromium). Takes a few minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
NNQ=${1:-build/nnq}
"$NNQ" analyze models/mobilenetv2.onnx -o docs/report-mobilenetv2.html --per-tensor \
    --wrange minmax --arange minmax --eval-limit 1000
scripts/screenshot.sh docs/report-mobilenetv2.html docs/report-mobilenetv2.png 2400
# The CLE range picture sits further down the page: a tall screenshot, cut
# to that section (rows found by eye for this report's layout).
scripts/screenshot.sh docs/report-mobilenetv2.html /tmp/nnq-report-tall.png 6000
/usr/bin/python3 -c "
from PIL import Image
Image.open('/tmp/nnq-report-tall.png').crop((0, 3630, 1280, 4700)).save('docs/report-mobilenetv2-cle.png', optimize=True)"
