"""Run every bench/bench_*.py script in turn; each prints `name: value unit (target ...)` lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    """Run the benchmarks given on the command line (default: all of them)."""
    here = Path(__file__).parent
    wanted = sys.argv[1:]
    scripts = sorted(here.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if any(w in s.stem for w in wanted)]
    status = 0
    for script in scripts:
        print(f"# {script.stem}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=here.parent)
        if result.returncode != 0:
            print(f"{script.stem}: failed with exit status {result.returncode}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
