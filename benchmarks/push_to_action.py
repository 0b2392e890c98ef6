"""Push-to-action latency of the daemon: from `git push` returning to the first Flink call of the
action it causes, with the webhook and with polling at the default interval (I/O: processes,
git, HTTP).

`flink-gitops run` (defaults but for the webhook secret and a listen port) watches a spec repo
whose deployments run on the fake Flink server (benchmarks/fake_flink.py), which timestamps every
state-changing call. Each round pushes a parallelism change of one deployment, the webhook way
(the benchmark posts a signed GitHub push event right after the push, as a git server would)
and the polling way (no webhook, the push at a random moment of the poll interval), interleaved
A B A B ...; the latency is the time from the
push returning to the `POST /jobs/:id/stop` of the stateful upgrade arriving at Flink.

    python3 benchmarks/push_to_action.py --repeat 5
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, machine, median  # noqa: E402

SECRET = "benchmark-secret"


def first_action_after(fake_url: str, since: float, timeout: float) -> float:
    """When the first state-changing call after `since` reached the fake Flink."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        calls = [c for c in requests.get(f"{fake_url}/_changes").json() if c["at"] >= since]
        if calls:
            return min(c["at"] for c in calls)
        time.sleep(0.005)
    raise TimeoutError(f"no Flink call within {timeout}s of the push")


def webhook(daemon_url: str) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    requests.post(f"{daemon_url}/hooks/git", data=body, timeout=5, headers={
        "X-Hub-Signature-256": signature, "X-GitHub-Event": "push",
        "Content-Type": "application/json"}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--interval", default=None,
                        help="the daemon's --interval (default: its own default, 30s)")
    parser.add_argument("--ways", default="webhook,polling",
                        help="which triggers to measure (webhook, polling)")
    args = parser.parse_args()

    fake_port, daemon_port = free_port(), free_port()
    fake_url, daemon_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{daemon_port}"
    executable = shutil.which("flink-gitops")
    command = [executable] if executable else [sys.executable, "-m", "agent.cli"]
    ways = args.ways.split(",")
    results: dict[str, list[float]] = {way: [] for way in ways}
    interval_s = float(args.interval[:-1]) * {"s": 1, "m": 60, "h": 3600}[args.interval[-1]] \
        if args.interval else 30.0
    randomly = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="push-to-action-") as tmp:
        root = Path(tmp)
        fake = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fake_flink.py"),
                                 "--port", str(fake_port)], stdout=subprocess.PIPE, text=True)
        daemon = None
        try:
            fake.stdout.readline()
            repo = SpecRepo(root)
            repo.write_target("fake", f"{fake_url}/c/one")
            (repo.checkout / "jobs").mkdir()
            (repo.checkout / "jobs" / "counter.jar").write_bytes(b"PK stand-in jar")
            for d in range(args.deployments):
                repo.write(f"deployments/d{d}.yaml", counter_deployment(f"d{d}", target="fake"))
            repo.push("specs")
            interval = ["--interval", args.interval] if args.interval else []
            daemon = subprocess.Popen(
                command + ["run", "--repo", str(repo.remote), "--workdir", str(root / "agent"),
                           "--listen", f"127.0.0.1:{daemon_port}"] + interval,
                cwd=ROOT, env={**os.environ, "FLINK_GITOPS_WEBHOOK_SECRET": SECRET},
                stdout=subprocess.DEVNULL, stderr=open(root / "daemon.log", "w"))
            deadline = time.time() + 120 + args.deployments * 0.5   # the first deploy
            while time.time() < deadline:
                try:
                    if requests.get(f"{daemon_url}/readyz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("the daemon did not get ready:\n"
                                 + (root / "daemon.log").read_text()[-3000:])
            for _ in range(args.repeat):
                for way in ways:
                    if way == "polling":   # a push lands at a random moment of the interval
                        time.sleep(randomly.uniform(0, interval_s))
                    parallelism = sum(len(v) for v in results.values()) + 2
                    repo.write("deployments/d0.yaml", counter_deployment(
                        "d0", target="fake", parallelism=parallelism))
                    repo.push(f"d0 parallelism {parallelism}")
                    pushed = time.time()
                    if way == "webhook":
                        webhook(daemon_url)
                    acted = first_action_after(fake_url, pushed, timeout=120)
                    results[way].append(acted - pushed)
                    print(f"  {way}: {acted - pushed:.3f}s", file=sys.stderr, flush=True)
                    time.sleep(1.5)   # the action and its status push complete
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(timeout=60)
            fake.terminate()
            fake.wait(timeout=10)

    print(f"\nMachine: {machine()}\n")
    print(f"Daemon: `flink-gitops run` with default --interval"
          f"{' ' + args.interval if args.interval else ''}; {args.deployments} deployments on "
          "the fake Flink.\n")
    print("| trigger | runs | median s | min s | max s |")
    print("|---|---|---|---|---|")
    for way, values in results.items():
        print(f"| {way} | {len(values)} | {median(values):.3f} | {min(values):.3f} | "
              f"{max(values):.3f} |")


if __name__ == "__main__":
    main()
