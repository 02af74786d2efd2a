"""``python -m bench [--quick] ...``: the benchmark suite (bench/bench_suite.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_suite import main  # noqa: E402

if __name__ == "__main__":
    main()
