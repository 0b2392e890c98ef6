"""Upgrade latency on a real Flink 2.3 cluster: the agent against the bare REST calls Flink needs
(I/O: a local Flink cluster, git, HTTP).

For each transition — a stateful upgrade (parallelism change), a first deploy, a suspend and a
resume — the agent's `sync` (started right after the `git push`, in a long-lived process as the
daemon runs it) and a baseline script (only the REST calls: stop-with-savepoint, poll, run from
the savepoint, poll until RUNNING) take turns, A B A B ..., on jobs of the counter example. An
observer polls `GET /jobs/overview` every 20 ms and times, for every job, the last moment it was
seen RUNNING and the first moment it was seen RUNNING with every task running. Reported per
transition (medians): end-to-end (push returned -> new job running, or old job ended for a
suspend), downtime (old job last running -> new job first running), and their ratios. Every
upgraded job is checked to have restored the savepoint its predecessor was stopped with.

    python3 benchmarks/upgrade_latency.py --repeat 5
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, machine, median  # noqa: E402

POLL_S = 0.05          # the baseline polls every 50 ms: a best case (the agent starts at 50 ms)
TERMINAL = {"FINISHED", "CANCELED", "FAILED"}


class Observer:
    """Watches the cluster's jobs overview every 20 ms (a thread); `url` may be a function
    giving the address of wherever the jobs run now."""

    def __init__(self, url: str | Callable[[], str | None]):
        self.url_of = url if callable(url) else lambda: url   # (where the jobs run now)
        self.last_running: dict[str, float] = {}
        self.first_running: dict[str, float] = {}      # every task running
        self.first_ended: dict[str, float] = {}
        self._stop = threading.Event()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            url = self.url_of()
            try:
                jobs = self._session.get(f"{url}/jobs/overview", timeout=5).json()["jobs"] \
                    if url else []
            except (requests.RequestException, ValueError, KeyError):
                time.sleep(0.02)
                continue
            now = time.time()
            for job in jobs:
                tasks = job.get("tasks", {})
                if job["state"] == "RUNNING":
                    self.last_running[job["jid"]] = now
                    if tasks.get("total") and tasks.get("running") == tasks.get("total"):
                        self.first_running.setdefault(job["jid"], now)
                elif job["state"] in TERMINAL:
                    self.first_ended.setdefault(job["jid"], now)
            time.sleep(0.02)

    def await_running(self, job: str, timeout: float = 120) -> float:
        return self._await(self.first_running, job, "running", timeout)

    def await_ended(self, job: str, timeout: float = 120) -> float:
        return self._await(self.first_ended, job, "ended", timeout)

    @staticmethod
    def _await(seen: dict[str, float], job: str, what: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while job not in seen:
            if time.time() > deadline:
                raise TimeoutError(f"job {job} not {what} after {timeout}s")
            time.sleep(0.01)
        return seen[job]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# --- the baseline: the REST calls Flink needs, nothing else -------------------------------------

class Baseline:
    def __init__(self, url: str, jar: Path):
        self.url = url
        self.http = requests.Session()
        with jar.open("rb") as content:
            answer = self.http.post(f"{url}/jars/upload", files={
                "jarfile": ("counter.jar", content, "application/x-java-archive")}).json()
        self.jar_id = Path(answer["filename"]).name

    def run(self, parallelism: int, savepoint: str | None = None) -> str:
        body = {"entryClass": "com.example.Counter", "parallelism": parallelism,
                "programArgsList": ["--rate", "20", "--keys", "4"], "jobId": uuid.uuid4().hex,
                "flinkConfiguration": {"execution.checkpointing.interval": "1s"}}
        if savepoint:
            body |= {"savepointPath": savepoint, "claimMode": "NO_CLAIM"}
        answer = self.http.post(f"{self.url}/jars/{self.jar_id}/run", json=body)
        answer.raise_for_status()
        return answer.json()["jobid"]

    def await_running(self, job: str) -> None:
        while True:
            jobs = self.http.get(f"{self.url}/jobs/overview").json()["jobs"]
            found = next((j for j in jobs if j["jid"] == job), None)
            if found and found["state"] == "RUNNING" and \
                    found["tasks"]["running"] == found["tasks"]["total"]:
                return
            time.sleep(POLL_S)

    def stop(self, job: str) -> str:
        trigger = self.http.post(f"{self.url}/jobs/{job}/stop",
                                 json={"drain": False}).json()["request-id"]
        while True:
            answer = self.http.get(f"{self.url}/jobs/{job}/savepoints/{trigger}").json()
            if answer["status"]["id"] == "COMPLETED":
                return answer["operation"]["location"]
            time.sleep(POLL_S)


# --- the benchmark -----------------------------------------------------------------------------

def restored_from(url: str, job: str, timeout: float = 15) -> str | None:
    """The savepoint a job restored (Flink's checkpoint statistics lag a few seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = requests.get(f"{url}/jobs/{job}/checkpoints").json().get("latest") or {}
        if latest.get("restored"):
            return latest["restored"]["external_path"]
        time.sleep(0.5)
    return None


def agent_job(url: str, name: str) -> str | None:
    """The deployment's running job (its id starts with the deployment's key)."""
    from agent.job_ids import deployment_key

    jobs = requests.get(f"{url}/jobs/overview").json()["jobs"]
    running = [j["jid"] for j in jobs if j["jid"].startswith(deployment_key(name))
               and j["state"] not in TERMINAL]
    return max(running, default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds a job runs before it is upgraded")
    parser.add_argument("--profile", help="write cProfile stats of the agent's stateful upgrade "
                                          "in an extra, unmeasured round to this file")
    args = parser.parse_args()

    from agent.config import Settings
    from agent.flink import local
    from agent.flink.build import build_jar
    from functools import partial

    from agent.caches import Caches
    from agent.reconcile import sync as one_cycle

    sync = partial(one_cycle, caches=Caches())   # as the daemon runs cycles: one owner of memos

    results: dict[tuple[str, str], list[dict]] = {}
    restored_ok, restored_checked = 0, 0
    with tempfile.TemporaryDirectory(prefix="upgrade-latency-") as tmp:
        root = Path(tmp)
        port = free_port()
        cluster = local.start(root / "flink", port=port, slots=8)
        observer = Observer(cluster.url)
        try:
            jar = build_jar(ROOT / "spec-examples" / "jobs" / "counter" / "src", root / "build",
                            name="counter")
            repo = SpecRepo(root / "repo")
            repo.write_target("bench", cluster.url)
            repo.add_file("jobs/counter.jar", jar)
            repo.push("target")
            settings = Settings(str(repo.remote), workdir=root / "agent")
            # warm, as a running daemon is: the mirror cloned, the jar uploaded once
            for state in ("RUNNING", "CANCELLED"):
                repo.write("deployments/warmup.yaml",
                           counter_deployment("warmup", target="bench", state=state))
                repo.push(f"warmup {state}")
                sync(settings)
            baseline = Baseline(cluster.url, jar)

            def record(kind: str, who: str, started: float, returned: float,
                       running: str | None = None, ended: str | None = None,
                       old: str | None = None) -> None:
                """One turn's figures: until `running` runs (or `ended` ended); downtime since
                `old` last ran."""
                end = observer.await_running(running) if running else observer.await_ended(ended)
                downtime = end - observer.last_running[old] if old else None
                if profiling:
                    return   # the extra round under cProfile is not measured
                results.setdefault((kind, who), []).append(
                    {"total": end - started, "downtime": downtime, "returned": returned - started})
                print(f"  {kind} {who}: {end - started:.2f}s"
                      + (f", downtime {downtime:.2f}s" if downtime is not None else ""),
                      file=sys.stderr, flush=True)

            def agent_turn(kind: str, name: str, old: str | None = None, **fields) -> str | None:
                """Pushes the deployment's new spec and syncs; returns its job then."""
                repo.write(f"deployments/{name}.yaml",
                           counter_deployment(name, target="bench", **fields))
                repo.push(f"{kind} {name}")
                started = time.time()
                if profiling and kind == "stateful upgrade":
                    profile = cProfile.Profile()
                    profile.runcall(sync, settings)
                    profile.dump_stats(args.profile)
                else:
                    sync(settings)
                job = agent_job(cluster.url, name)
                if fields.get("state") == "SUSPENDED":
                    record(kind, "agent", started, time.time(), ended=old)
                else:
                    record(kind, "agent", started, time.time(), running=job, old=old)
                return job

            def baseline_turn(kind: str, old: str | None = None, parallelism: int = 1,
                              savepoint: str | None = None,
                              suspend: bool = False) -> tuple[str | None, str | None]:
                """The REST calls alone; returns (new job, savepoint taken)."""
                started, job = time.time(), None
                if old:
                    savepoint = baseline.stop(old)
                if not suspend:
                    job = baseline.run(parallelism, savepoint)
                    baseline.await_running(job)
                if suspend:
                    record(kind, "baseline", started, time.time(), ended=old)
                else:
                    record(kind, "baseline", started, time.time(), running=job, old=old)
                return job, savepoint

            profiling = False
            for round_ in range(args.repeat + (1 if args.profile else 0)):
                profiling = round_ == args.repeat
                name = f"bench{round_}"
                job = agent_turn("first deploy", name)
                base_job, _ = baseline_turn("first deploy")
                time.sleep(args.settle)

                new = agent_turn("stateful upgrade", name, old=job, parallelism=2)
                base_new, savepoint = baseline_turn("stateful upgrade", old=base_job,
                                                    parallelism=2)
                restored_checked += 2
                restored_ok += restored_from(cluster.url, base_new) == savepoint
                restored_ok += (restored_from(cluster.url, new)
                                == repo.status_of(name)["lastSavepoint"]["location"])
                time.sleep(args.settle)

                agent_turn("suspend", name, old=new, parallelism=2, state="SUSPENDED")
                _, base_savepoint = baseline_turn("suspend", old=base_new, suspend=True)

                resumed = agent_turn("resume", name, parallelism=2)
                base_resumed, _ = baseline_turn("resume", parallelism=2,
                                                savepoint=base_savepoint)

                # leave the cluster free for the next round
                repo.write(f"deployments/{name}.yaml", counter_deployment(
                    name, target="bench", parallelism=2, state="CANCELLED"))
                repo.push(f"cancel {name}")
                sync(settings)
                requests.patch(f"{cluster.url}/jobs/{base_resumed}", params={"mode": "cancel"})
                for job_id in (resumed, base_resumed):
                    observer.await_ended(job_id)
        finally:
            observer.close()
            local.stop(root / "flink", port=port)

    print(f"\nMachine: {machine()}\n")
    print(f"Savepoint restored by the new job (checked on Flink): {restored_ok} of "
          f"{restored_checked} upgrades.\n")
    print("| transition | runs | agent s | baseline s | ratio | agent downtime s | "
          "baseline downtime s | downtime ratio | agent `sync` returned s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("stateful upgrade", "first deploy", "suspend", "resume"):
        agent, base = results.get((kind, "agent"), []), results.get((kind, "baseline"), [])
        if not agent or not base:
            continue
        a, b = median([r["total"] for r in agent]), median([r["total"] for r in base])
        row = f"| {kind} | {len(agent)} | {a:.2f} | {b:.2f} | {a / b:.2f}× |"
        if agent[0]["downtime"] is not None:
            da = median([r["downtime"] for r in agent])
            db = median([r["downtime"] for r in base])
            row += f" {da:.2f} | {db:.2f} | {da / db:.2f}× |"
        else:
            row += " — | — | — |"
        row += f" {median([r['returned'] for r in agent]):.2f} |"
        print(row)


if __name__ == "__main__":
    main()
