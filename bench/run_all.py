"""Run every benchmark at full size, one after another, and print their tables.

    .venv/bin/python -m bench.run_all | tee /tmp/bench.md      # about 20-30 minutes

Each benchmark runs in its own process (a clean heap and a fresh pair of emulators). The
tables are Markdown, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCHES = (
    ["bench.first_import"],
    ["bench.incremental"],
    ["bench.naive_client"],
    ["bench.growth"],
    ["bench.tui"],
)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    failed = 0
    for args in BENCHES:
        started = time.perf_counter()
        print(f"<!-- python -m {' '.join(args)} -->", flush=True)
        done = subprocess.run([sys.executable, "-m", *args], cwd=root)
        print(
            f"<!-- exit {done.returncode}, {time.perf_counter() - started:.0f} s -->\n", flush=True
        )
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
