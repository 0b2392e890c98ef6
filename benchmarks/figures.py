"""What every benchmark reports alongside its figures: medians, the machine and its load, and
the spec repositories they run on (the tests' own: `tests/conftest.py` `SpecRepo`) (pure, but
for `load_average`, which reads the machine's load)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import SpecRepo, counter_deployment, free_port, git  # noqa: E402,F401


def load_average() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"Python {sys.version.split()[0]}, {platform.system()} {platform.release()}; "
            f"shared with other work: load {load_average()}")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
