#!/usr/bin/env python3
"""The final table of benches/compare.sh: medians and ratios (stdlib only).

  report.py SAMPLES.tsv ROWS.tsv

SAMPLES.tsv: "KEY<TAB>VALUE" per run; VALUE is a number, or FAIL for a failed run.
ROWS.tsv, one row of the table per line, in order:
  cmp<TAB>LABEL<TAB>TERN_KEY<TAB>REF_KEY<TAB>REF_NAME[<TAB>AGG]
                                                       medians (or AGG) of both, ratio tern/ref
  val<TAB>LABEL<TAB>KEY<TAB>AGG<TAB>NOTE               one aggregate (median, sum, max); NOTE
                                                       goes in the reference column
  skip<TAB>LABEL<TAB>REASON                            a reference that could not run (the reason
                                                       is listed under the table)
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict


def fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    a = abs(v)
    if a >= 100 or v == int(v):
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def load(path: str) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                continue
            key, val = parts
            if val == "FAIL":
                out[key].append(None)
            else:
                try:
                    out[key].append(float(val))
                except ValueError:
                    out[key].append(None)
    return out


def agg(values: list, how: str = "median") -> tuple[float | None, int, int]:
    """(aggregate of the successful runs, runs, failed runs)."""
    ok = [v for v in values if v is not None and not math.isnan(v)]
    failed = sum(1 for v in values if v is None)
    if not ok:
        return None, len(values), failed
    if how == "sum":
        return sum(ok), len(values), failed
    if how == "max":
        return max(ok), len(values), failed
    return statistics.median(ok), len(values), failed


def cell(values: list, how: str = "median") -> tuple[str, float | None]:
    v, n, failed = agg(values, how)
    if n == 0:
        return "not run", None
    if v is None:
        return (f"FAILED {failed}/{n}" if failed else "n/a"), None
    text = fmt(v)
    if failed:
        text += f" ({failed}/{n} failed)"
    return text, v


def main(argv: list[str]) -> int:
    samples = load(argv[0])
    table = [("case", "tern", "reference", "ratio (tern/ref)")]
    skipped: list[str] = []
    with open(argv[1], encoding="utf-8") as f:
        specs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for spec in specs:
        kind = spec[0]
        if kind == "cmp":
            _, label, tkey, rkey, rname, *how = spec
            ttext, tv = cell(samples.get(tkey, []), *how)
            rtext, rv = cell(samples.get(rkey, []), *how)
            ratio = f"{tv / rv:.2f}" if tv is not None and rv else "n/a"
            table.append((label, ttext, f"{rtext} ({rname})", ratio))
        elif kind == "val":
            _, label, key, how, note = spec
            ttext, _ = cell(samples.get(key, []), how)
            table.append((label, ttext, note, ""))
        elif kind == "skip":
            _, label, reason = spec
            table.append((label, "", "skipped (see below)", ""))
            skipped.append(f"  {label}: {reason}")
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
    if skipped:
        print("skipped:")
        print("\n".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
