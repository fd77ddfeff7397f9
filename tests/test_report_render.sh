#!/bin/sh
# The sample report of tests/test_report.c rendered by headless Chromium
# (scripts/screenshot.sh): the screenshot is not blank, the rendered DOM has
# the page title and every chart. Skipped (exit 77) without chromium, which
# only `scripts/deps.sh --peers` installs.
# Usage: sh tests/test_report_render.sh BUILD/nnq (from the repo root).
set -eu

NNQ=${1:?usage: test_report_render.sh PATH/TO/nnq}
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "SKIP: chromium is not installed (scripts/deps.sh --peers)" >&2
    exit 77
fi
# test_report writes its sample report into a directory it is given.
"$(dirname "$NNQ")/tests/test_report" "$TMP" 2>"$TMP/test_report.log" ||
    { cat "$TMP/test_report.log" >&2; fail "test_report failed"; exit 1; }

sh scripts/screenshot.sh "$TMP/sample.html" "$TMP/sample.png" 2600 || fail "screenshot checks"
[ -s "$TMP/sample.png" ] || fail "no screenshot written"

# A page without content must fail the same checks (the check can fail).
printf '<!DOCTYPE html><html><head><title>empty</title></head><body></body></html>\n' \
    >"$TMP/blank.html"
if sh scripts/screenshot.sh "$TMP/blank.html" "$TMP/blank.png" 2>/dev/null; then
    fail "a blank page passed the screenshot checks"
fi
[ ! -e "$TMP/blank.png" ] || fail "a failed check still wrote its PNG"

[ "$failures" -eq 0 ] || exit 1
echo "test_report_render: all checks passed" >&2
