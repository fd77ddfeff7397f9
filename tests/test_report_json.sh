#!/bin/sh
# The sample report of tests/test_report.c read back by Python's own
# parsers, independently of the C checkers in tests/report_check.h:
#   1. `python3 -m json.tool` accepts the JSON;
#   2. tests/lib/check_report.py: the JSON's shape is consistent (every row has one cell per column,
#      every series as many values as the chart has bars, x positions or
#      channels, a histogram one count fewer than edges);
#   3. html.parser reads the page: each section table's cells are the JSON's
#      cells as text (numbers compared as written), in order;
#   4. xml.etree parses every <svg> block, which has a viewBox.
# Usage: sh tests/test_report_json.sh BUILD/nnq (from the repo root).
set -eu

NNQ=${1:?usage: test_report_json.sh PATH/TO/nnq}
. tests/lib/common.sh # PY, TMP (removed on exit), fail()

"$(dirname "$NNQ")/tests/test_report" "$TMP" 2>"$TMP/test_report.log" ||
    { cat "$TMP/test_report.log" >&2; fail "test_report failed"; exit 1; }

"$PY" -m json.tool "$TMP/sample.json" >/dev/null || fail "json.tool rejects sample.json"

"$PY" tests/lib/check_report.py "$TMP/sample.json" "$TMP/sample.html" 2 || fail "page and JSON disagree"

[ "$failures" -eq 0 ] || exit 1
echo "test_report_json: all checks passed" >&2
