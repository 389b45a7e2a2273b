"""`deploysafe --version` against `python -c pass`: what the CLI's start-up adds (goal: < 100 ms)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, save, timeit  # noqa: E402

RUNS = 21


def main() -> None:
    exe = Path(sys.executable).parent / "deploysafe"
    bare = timeit(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), RUNS)
    ver = timeit(lambda: subprocess.run([str(exe), "--version"], check=True, capture_output=True), RUNS)
    hlp = timeit(lambda: subprocess.run([str(exe), "--help"], check=True, capture_output=True), RUNS)
    rows = [
        {"what": "python -c pass", "median_ms": round(median(bare) * 1000, 1)},
        {"what": "deploysafe --version", "median_ms": round(median(ver) * 1000, 1)},
        {"what": "deploysafe --help", "median_ms": round(median(hlp) * 1000, 1)},
    ]
    added = (median(ver) - median(bare)) * 1000
    save("startup", "CLI start-up", rows,
         f"deploysafe --version adds {added:.0f} ms over python -c pass (median of {RUNS})", goal="< 100 ms added")


if __name__ == "__main__":
    main()
