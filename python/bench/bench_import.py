"""Import cost: `import quiver` against `import feast`, each in fresh interpreters.

Wall time of `python -c "import X"` (the median of `--repeat` processes, minus the median of
a bare `python -c pass`), and the cumulative time `python -X importtime` reports for the
top-level module (the median of the same number of runs).

    python python/bench/bench_import.py [--repeat N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULES = ["quiver", "feast"]


def wall(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def importtime_us(module: str) -> int:
    """Cumulative microseconds of `module`'s own line in `-X importtime`'s report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
    )
    pattern = re.compile(rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(module)}$", re.MULTILINE)
    found = pattern.findall(done.stderr)
    if not found:
        raise SystemExit(f"no importtime line for {module}")
    return int(found[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="processes per measurement")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    for module in MODULES:  # fail early, and warm the OS's file cache
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    baseline = statistics.median(wall("pass") for _ in range(args.repeat))
    figures = {}
    for module in MODULES:
        walls = [wall(f"import {module}") for _ in range(args.repeat)]
        cumulative = [importtime_us(module) for _ in range(args.repeat)]
        figures[module] = {
            "wall_ms": statistics.median(walls) * 1e3,
            "wall_minus_bare_ms": (statistics.median(walls) - baseline) * 1e3,
            "importtime_ms": statistics.median(cumulative) / 1e3,
        }
    print(
        f"python {sys.version.split()[0]}; bare `python -c pass`: {baseline * 1e3:.1f} ms; "
        f"median of {args.repeat} fresh processes\n"
    )
    print("| module | wall ms | wall − bare ms | -X importtime cumulative ms |")
    print("|---|---:|---:|---:|")
    for module, fig in figures.items():
        print(
            f"| {module} | {fig['wall_ms']:.1f} | {fig['wall_minus_bare_ms']:.1f} | "
            f"{fig['importtime_ms']:.1f} |"
        )
    q, f = figures["quiver"], figures["feast"]
    print(
        f"\nfeast / quiver: {f['wall_minus_bare_ms'] / q['wall_minus_bare_ms']:.1f}× (wall − bare), "
        f"{f['importtime_ms'] / q['importtime_ms']:.1f}× (importtime)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"bare_ms": baseline * 1e3, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
