"""Faults survived, measured: runs the fault tests (real Flink, real git, faults injected for
real; see tests/faults.py) a few times and prints, per fault, the trials, the jobs lost, the
duplicate jobs, the savepoints lost and the median time to recover (from the fault healed to
every deployment running again, as each test measures it: tests/faults.py `recovered`).

    python3 benchmarks/faults.py [--repeat 3]

Each round is one pytest run of the fault tests (the clusters of a round are shared by its
tests, as in the suite); a failed assertion fails the round and is reported, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

from figures import ROOT, machine, median

TESTS = [
    "tests/test_flink_faults.py",
    "tests/test_rest_faults.py",
    "tests/test_git_faults.py::"
    "test_a_status_the_remote_could_not_take_is_kept_and_pushed_first_by_the_next_cycle",
    "tests/test_flink_1_20.py::"
    "test_a_job_lost_with_a_flink_1_20_jobmanager_comes_back_from_its_retained_checkpoint",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    rounds = parser.parse_args().repeat
    rows: dict[str, list[dict]] = defaultdict(list)
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        figures_file = os.path.join(scratch, "figures.jsonl")
        for round_ in range(1, rounds + 1):
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *TESTS],
                cwd=ROOT, env={**os.environ, "FLINK_GITOPS_FAULT_FIGURES": figures_file},
                capture_output=True, text=True)
            lines = done.stdout.strip().splitlines() or ["no output"]
            print(f"round {round_}/{rounds}: {lines[-1]}", file=sys.stderr)
            for line in lines:
                if line.startswith("FAILED") or line.startswith("E "):
                    print(f"  {line}", file=sys.stderr)
            failed += done.returncode != 0
        with open(figures_file) as lines:
            for line in lines:
                figures = json.loads(line)
                rows[figures["fault"]].append(figures)
    print(f"Machine: {machine()}; {rounds} round(s), {failed} failed\n")
    print("| fault | trials | jobs lost | duplicate jobs | savepoints lost | median time to "
          "recover |")
    print("|---|---|---|---|---|---|")
    for fault, trials in rows.items():
        print(f"| {fault} | {len(trials)} | {sum(t['jobs_lost'] for t in trials)} | "
              f"{sum(t['duplicates'] for t in trials)} | "
              f"{sum(t['savepoints_lost'] for t in trials)} | "
              f"{median([t['recover_s'] for t in trials]):.1f} s |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
