"""Several agents sharing one spec repo by shards, on the fake Flink server
(benchmarks/fake_flink.py) (I/O: git, processes, HTTP).

`size` deployments, labelled `shard: s0` … `shard: s<agents-1>` round-robin and spread over
`clusters` targets, are run by `agents` daemons (`flink-gitops run --shard-selector shard=sN`),
each in a process and work dir of its own. The scenario:

1. every agent starts; all deployments are deployed (each agent its shard's);
2. one commit changes the parallelism of every deployment of shard s1; once agent s1 has begun
   the upgrades (old jobs stopped with a savepoint, new ones not started: frozen there by a
   testpoint), it is SIGKILLed, and a replacement for shard s1 is started: it takes the
   shard's lease (its holder's process is gone) and finishes them.

It reports the times, and the raw facts the test (`tests/test_shards.py`) asserts on: every
state-changing call the fake cluster received (with its job), the jobs each cluster runs, and
the status branch's status.json.

    python3 benchmarks/shards.py --size 10000 --clusters 50 --agents 4
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, git, load_average, machine  # noqa: E402,E501
from fake_flink import serve  # noqa: E402

from agent.testpoints import OLD_JOB_STOPPED  # noqa: E402


def build_repo(root: Path, size: int, clusters: int, agents: int, fake_url: str) -> SpecRepo:
    repo = SpecRepo(root)
    for c in range(clusters):
        repo.write_target(f"c{c:02d}", f"{fake_url}/c/shards-c{c:02d}")
    for d in range(size):
        repo.write(f"deployments/d{d:05d}.yaml", deployment(d, clusters, agents))
    (repo.checkout / "jobs").mkdir()
    with zipfile.ZipFile(repo.checkout / "jobs" / "counter.jar", "w") as jar:   # (the fake
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")      # runs nothing)
        jar.writestr("com/example/Counter.class", b"\xca\xfe\xba\xbe")
    repo.push("specs")
    return repo


def deployment(d: int, clusters: int, agents: int, parallelism: int = 1) -> str:
    return counter_deployment(f"d{d:05d}", parallelism, labels=f"{{shard: s{d % agents}}}",
                              target=f"c{(d // agents) % clusters:02d}")


class Agent:
    """One agent's daemon process, of one shard."""

    def __init__(self, repo: SpecRepo, workdir: Path, shard: str, log: Path,
                 frozen: Path | None = None):
        """`frozen`: the agent freezes as each action has stopped its old job (`testpoints`),
        and writes this file."""
        self.shard = shard
        freezing = {"FLINK_GITOPS_PAUSE_AT": OLD_JOB_STOPPED,
                    "FLINK_GITOPS_PAUSE_FILE": str(frozen)} if frozen else {}
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--repo", str(repo.remote),
             "--workdir", str(workdir), "--shard-selector", f"shard={shard}",
             "--interval", "1s", "--drift-interval", "10s", "--lease-ttl", "60",
             "--actions-per-target", "4", "--listen", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **freezing})

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def status_index(repo: SpecRepo) -> dict:
    """status.json of the status branch on the remote ({} before the first)."""
    try:
        return json.loads(git(repo.remote, "show", "flink-gitops/status:status.json"))
    except Exception:  # noqa: BLE001 - no branch yet
        return {}


def wait_for(what: str, done, timeout: float, agents: list[Agent]) -> float:
    """Seconds until `done()`; AssertionError naming `what` after `timeout`, or when an agent
    that should run has ended."""
    started = time.monotonic()
    while not done():
        for agent in agents:
            if agent.process.poll() is not None:
                raise AssertionError(f"agent of shard {agent.shard} ended "
                                     f"(exit {agent.process.returncode}) while waiting: {what}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not done after {timeout:.0f}s: {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def fake(url: str, path: str):
    with urllib.request.urlopen(url + path, timeout=30) as answer:
        return json.loads(answer.read())


def run(root: Path, size: int, clusters: int, agents: int, timeout: float) -> dict:
    """The scenario of the module's docstring; returns its times and raw facts."""
    port = free_port()
    server = serve(port, root / "savepoints")
    url = f"http://127.0.0.1:{port}"
    repo = build_repo(root / "repo", size, clusters, agents, url)
    frozen = root / "s1-frozen"
    running = [Agent(repo, root / f"agent-s{n}", f"s{n}", root / f"agent-s{n}.log",
                     frozen if n == 1 else None) for n in range(agents)]
    facts: dict = {"size": size, "clusters": clusters, "agents": agents}
    try:
        def all_running(parallelism: dict[str, int]) -> bool:
            entries = status_index(repo).get("deployments", {})
            return len(entries) == size and all(
                entry.get("state") == "RUNNING" and not entry.get("problem")
                and entry.get("job", {}).get("parallelism", 1) == parallelism.get(name, 1)
                for name, entry in entries.items())
        facts["first_deploy_s"] = wait_for(f"{size} deployments RUNNING",
                                           lambda: all_running({}), timeout, running)
        facts["deploy_changes"] = fake(url, "/_changes")
        fake_reset = urllib.request.Request(url + "/_stats/reset", method="POST")
        urllib.request.urlopen(fake_reset, timeout=30).close()

        moved = {f"d{d:05d}": 2 for d in range(1, size, agents)}   # shard s1's
        for d in range(1, size, agents):
            repo.write(f"deployments/d{d:05d}.yaml", deployment(d, clusters, agents, 2))
        repo.push("shard s1: parallelism 2")
        changed = time.monotonic()
        wait_for("agent s1 has stopped an old job", frozen.exists, timeout, running)
        running[1].kill()   # mid-upgrade: old jobs stopped with a savepoint, new ones not started
        facts["stopped_before_kill"] = sum(c["call"] == "POST /jobs/:id/stop"
                                           for c in fake(url, "/_changes"))
        running[1] = Agent(repo, root / "agent-s1-replacement", "s1",
                           root / "agent-s1-replacement.log")
        wait_for("shard s1 upgraded by the replacement", lambda: all_running(moved), timeout,
                 running)
        facts["takeover_s"] = time.monotonic() - changed
        facts["upgrade_changes"] = fake(url, "/_changes")
        facts["jobs"] = {f"shards-c{c:02d}": fake(url, f"/c/shards-c{c:02d}/jobs/overview")["jobs"]
                         for c in range(clusters)}
        facts["status"] = status_index(repo)
        facts["dashboard"] = git(repo.remote, "show", "flink-gitops/status:README.md")
        facts["agent_cpu_s"] = {agent.shard: cpu_seconds(agent.process) for agent in running}
    finally:
        for agent in running:
            agent.stop()
        server.shutdown()
    return facts


def acted(changes: list[dict], call: str) -> Counter:
    """How many times each deployment (by its jobs' ids) received `call`."""
    return Counter(c["job"][:16] for c in changes if c["call"] == call and c["job"])


def cpu_seconds(process: subprocess.Popen) -> float:
    """The CPU time a running process used so far (its own, not its children's)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workdir", default=None, help="kept for inspection [default: a "
                                                       "temporary directory]")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as temporary:
        facts = run(Path(args.workdir or temporary), args.size, args.clusters, args.agents,
                    args.timeout)
    print(f"{machine()}, load {load_average()}")
    print(f"| {args.size:,} deployments / {args.clusters} clusters / {args.agents} agents | |")
    print("|---|---|")
    print(f"| first deploy, every shard at once | {facts['first_deploy_s']:.1f} s |")
    print(f"| a shard's upgrades, its agent SIGKILLed and replaced | {facts['takeover_s']:.1f} s |")
    for phase, call in (("deploy", "POST /jars/:id/run"), ("upgrade", "POST /jars/:id/run"),
                        ("upgrade", "POST /jobs/:id/stop")):
        times = acted(facts[f"{phase}_changes"], call)
        print(f"| {phase}: deployments that got `{call}` / more than once | {len(times):,} / "
              f"{sum(n > 1 for n in times.values())} |")
    print(f"| state-changing calls, first deploy | {len(facts['deploy_changes']):,} |")
    print(f"| state-changing calls, upgrade of shard s1 | {len(facts['upgrade_changes']):,} |")
    print(f"| jobs stopped by agent s1 before it was killed | {facts['stopped_before_kill']} |")
    print("| agents' CPU at the end (s) | " + ", ".join(
        f"{shard} {seconds:.0f}" for shard, seconds in facts["agent_cpu_s"].items()) + " |")


if __name__ == "__main__":
    main()
