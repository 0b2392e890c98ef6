"""What change control costs a cycle: the signature check of the spec branch's head (one git
process; with --verify-every-commit, every commit since the last applied one), and the sync
windows' verdicts of every deployment.

    python3 benchmarks/change_control.py [--commits 100] [--deployments 10000] [--windows 20]

Real git and ssh-keygen (keys made here, commits signed by git with gpg.format ssh); the windows
are judged as `assess` judges them (one Timetable a cycle), for deployments spread over labels
and targets so that windows select different sets of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.load import load  # noqa: E402
from agent.model.shard import Placement  # noqa: E402
from agent.signatures import Trust, verify  # noqa: E402
from agent.source import SpecRepository  # noqa: E402
from agent.sync_windows import Timetable  # noqa: E402

USER = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **USER}).stdout.strip()


def signed_repo(root: Path, commits: int) -> tuple[SpecRepository, Trust, list[str]]:
    key = root / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    allowed = root / "allowed_signers"
    allowed.write_text(f"bench@example.com {key.with_suffix('.pub').read_text()}")
    remote, checkout = root / "specs.git", root / "specs"
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    git(root, "clone", "-q", str(remote), str(checkout))
    made = []
    for i in range(commits):
        (checkout / "file.txt").write_text(f"{i}\n")
        git(checkout, "add", "-A")
        git(checkout, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q",
            "-S", "-m", f"commit {i}")
        made.append(git(checkout, "rev-parse", "HEAD"))
    git(checkout, "push", "-q", "origin", "HEAD:main")
    source = SpecRepository(str(remote), root / "agent")
    source.fetch()
    return source, Trust.of(allowed, None, False, root / "agent"), made


def timed(function, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def windows_yaml(count: int) -> str:
    docs = []
    for i in range(count):
        kind = "deny" if i % 2 else "allow"
        docs.append(f"apiVersion: v1\nkind: SyncWindow\nmetadata: {{name: w{i}}}\nspec:\n"
                    f"  kind: {kind}\n  schedule: \"{i % 60} {i % 24} * * 1-5\"\n"
                    f"  duration: 8h\n  timeZone: Europe/Berlin\n"
                    f"  deployments: {{matchLabels: {{team: t{i % 7}}}, targets: [c{i % 5}]}}\n")
    return "---\n".join(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        source, trust, made = signed_repo(Path(root), args.commits)
        head, first = made[-1], made[0]
        every = Trust(trust.options, trust.env, True)
        rows = [("head only", timed(lambda: verify(source, trust, "main", head, first),
                                    args.repeat)),
                (f"every commit ({args.commits - 1} since the applied one)",
                 timed(lambda: verify(source, every, "main", head, first), args.repeat))]
    loaded = load({"windows.yaml": windows_yaml(args.windows)})
    assert not loaded.problems, loaded.problems
    placements = [Placement({"team": f"t{i % 7}"}, f"c{i % 11}")
                  for i in range(args.deployments)]
    now = datetime(2026, 12, 5, 10, tzinfo=timezone.utc)

    def judge() -> None:
        timetable = Timetable.of(loaded, now)
        for placement in placements:
            timetable.verdict(placement)
    rows.append((f"{args.windows} windows, verdicts of {args.deployments:,} deployments",
                 timed(judge, args.repeat)))
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n| what | median s ({args.repeat} runs) | load (1/5/15 min) |\n|---|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.3f} | {load_avg} |")


if __name__ == "__main__":
    main()
