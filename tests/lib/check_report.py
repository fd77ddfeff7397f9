#!/usr/bin/python3
"""Check an nnq report (HTML page + its JSON) with Python's own parsers,
independently of the C code that wrote them:
  1. the JSON's shape is consistent (every row has one cell per column,
     every series as many values as the chart has bars, x positions or
     channels, a histogram one count fewer than edges);
  2. html.parser reads the page: each section table's cells are the JSON's
     cells as text (numbers compared as written), in order;
  3. xml.etree parses every <svg> block, which has a viewBox, and there is
     one per chart.
Usage: check_report.py REPORT.json REPORT.html [MIN_TABLES]; exit 1 on a
mismatch, with one line per problem on stderr."""
import json, re, sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

# Numbers keep their text, so "0.50" stays "0.50".
doc = json.load(open(sys.argv[1], encoding="utf-8"), parse_float=str, parse_int=str)
page = open(sys.argv[2], encoding="utf-8").read()
errors = []

def shape(item):
    t = item["type"]
    if t == "table":
        for row in item["rows"]:
            if len(row["cells"]) != len(item["columns"]):
                errors.append(f"table {item['caption']!r}: row of {len(row['cells'])} cells")
    elif t == "bar_chart":
        for s in item["series"]:
            if len(s["values"]) != len(item["labels"]):
                errors.append(f"bar chart {item['title']!r}: series {s['name']!r} length")
    elif t == "line_chart":
        n = len(item["x"] if "x" in item else item["x_labels"])
        for s in item["series"]:
            if len(s["y"]) != n:
                errors.append(f"line chart {item['title']!r}: series {s['name']!r} length")
    elif t == "range_chart":
        for s in item["series"]:
            if len(s["lo"]) != int(item["channels"]) or len(s["hi"]) != int(item["channels"]):
                errors.append(f"range chart {item['title']!r}: series {s['name']!r} length")
    elif t == "histogram":
        if item["counts"] and len(item["edges"]) != len(item["counts"]) + 1:
            errors.append(f"histogram {item['title']!r}: edges vs counts")
    elif t != "text":
        errors.append(f"unknown item type {t}")

tables = []
for sec in doc["sections"]:
    for item in sec["items"]:
        shape(item)
        if item["type"] == "table":
            tables.append([[("\u2013" if c is None else c) for c in r["cells"]]
                           for r in item["rows"]])

class Tables(HTMLParser):
    """Cells of every <table> outside the summary, as displayed text."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.cell, self.skip = [], None, False
    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.skip = ("class", "sens") in attrs
            if not self.skip:
                self.tables.append([])
        elif tag == "tr" and not self.skip and self.tables:
            self.row = []
        elif tag == "td" and not self.skip:
            self.cell = ""
    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and not self.skip and self.tables and self.row:
            self.tables[-1].append(self.row)
            self.row = []
    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

p = Tables()
p.feed(page)
if p.tables != tables:
    errors.append(f"tables differ:\n page {p.tables}\n JSON {tables}")
min_tables = int(sys.argv[3]) if len(sys.argv) > 3 else 1
if len(tables) < min_tables:
    errors.append(f"expected at least {min_tables} tables, found {len(tables)}")

svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
for i, svg in enumerate(svgs):
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as e:
        errors.append(f"svg #{i}: {e}")
        continue
    if not re.fullmatch(r"0 0 [0-9.]+ [0-9.]+", root.get("viewBox", "")):
        errors.append(f"svg #{i}: viewBox {root.get('viewBox')!r}")
charts = sum(1 for s in doc["sections"] for it in s["items"] if it["type"].endswith(("chart", "histogram")))
if len(svgs) != charts:
    errors.append(f"{len(svgs)} svg blocks for {charts} charts")

for e in errors:
    print("check_report:", e, file=sys.stderr)
print(f"check_report: {len(tables)} tables, {len(svgs)} charts checked", file=sys.stderr)
sys.exit(1 if errors else 0)
