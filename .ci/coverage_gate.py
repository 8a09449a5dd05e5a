#!/usr/bin/env python3
"""Line-coverage gate: prints a table per crate from `cargo llvm-cov report --json` and fails
when the workspace or a crate is below its floor.

Usage: coverage_gate.py REPORT.json
"""
import json
import os
import sys

# Floors in percent of lines. Library crates hold the bar the workspace holds; the reference
# server is held a little lower because some paths (signal handling, a terminal's progress
# bar) only run in a real process.
WORKSPACE_FLOOR = 92.0
CRATE_FLOORS = {
    "echo-core": 92.0,
    "echo-providers": 92.0,
    "echo-store-sqlite": 92.0,
    "echo-store-postgres": 92.0,
    "echo-server-example": 90.0,
}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        report = json.load(f)
    root = os.getcwd() + os.sep
    per_crate: dict[str, list[int]] = {}
    for data in report["data"]:
        for file in data["files"]:
            name = file["filename"]
            rel = name[len(root):] if name.startswith(root) else name
            crate = rel.split(os.sep, 1)[0]
            lines = file["summary"]["lines"]
            counts = per_crate.setdefault(crate, [0, 0])
            counts[0] += lines["covered"]
            counts[1] += lines["count"]
    failures = []
    total_cov = sum(c for c, _ in per_crate.values())
    total = sum(n for _, n in per_crate.values())
    print(f"{'crate':<22} {'lines':>8} {'covered':>8} {'percent':>8} {'floor':>6}")
    for crate in sorted(per_crate):
        covered, count = per_crate[crate]
        pct = 100.0 * covered / count if count else 100.0
        floor = CRATE_FLOORS.get(crate)
        mark = ""
        if floor is not None and pct < floor:
            failures.append(f"{crate}: {pct:.1f}% of lines, below its floor of {floor:.0f}%")
            mark = "  <- below floor"
        floor_text = f"{floor:.0f}%" if floor is not None else "-"
        print(f"{crate:<22} {count:>8} {covered:>8} {pct:>7.1f}% {floor_text:>6}{mark}")
    pct = 100.0 * total_cov / total if total else 100.0
    print(f"{'workspace':<22} {total:>8} {total_cov:>8} {pct:>7.1f}% {WORKSPACE_FLOOR:>5.0f}%")
    if pct < WORKSPACE_FLOOR:
        failures.append(f"workspace: {pct:.1f}% of lines, below its floor of {WORKSPACE_FLOOR:.0f}%")
    missing = sorted(set(CRATE_FLOORS) - set(per_crate))
    for crate in missing:
        failures.append(f"{crate}: no coverage data (did its tests run?)")
    for failure in failures:
        print(f"coverage gate: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
