"""A deployment in a Flink cluster of its own (application mode) against the same deployment on the
session cluster, on real Flink 2.3 (I/O: local Flink clusters, git, HTTP).

For each mode, one counter deployment is deployed, then upgraded statefully `--repeat` times
(its `mainArgs` changes, a change of the job in both modes), by the agent's `sync` run right
after the `git push`, in a long-lived process as the daemon runs it. An observer polls the jobs
overview of wherever the deployment runs (in application mode: its current cluster, found again
at every poll) every 20 ms, and times the last moment the old job was seen RUNNING and the first
moment the new one ran every task. Reported (medians): first deploy (push returned -> job
running), the upgrade end to end and its downtime, and a cycle with nothing to do. Every upgraded
job is checked to have restored the savepoint its predecessor was stopped with.

    python3 benchmarks/application_mode.py --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from functools import partial
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, machine, median  # noqa: E402
from upgrade_latency import Observer  # noqa: E402

NAME = "bench"


def run_mode(mode: str, root: Path, jar: Path, repeat: int) -> dict[str, list[float]]:
    from agent.caches import Caches
    from agent.config import Settings
    from agent.flink import application, local
    from agent.reconcile import sync as one_cycle

    sync = partial(one_cycle, caches=Caches())   # as the daemon runs cycles
    workdir = root / mode / "agent"
    repo = SpecRepo(root / mode)
    session = None
    if mode == "session":
        session = local.start(root / mode / "flink", port=free_port(), slots=4)
        repo.write_target("bench", session.url)

        def url_of() -> str | None:
            return session.url
    else:
        repo.write("targets/bench.yaml", "apiVersion: v1\nkind: DeploymentTarget\n"
                   "metadata: {name: bench}\nspec: {local: {mode: application}}\n")

        def url_of() -> str | None:
            cluster = application.recorded(workdir, NAME)
            return cluster.url if cluster is not None else None
    repo.add_file("jobs/counter.jar", jar)
    settings = Settings(str(repo.remote), workdir=workdir)
    observer = Observer(url_of)
    figures: dict[str, list[float]] = {"first deploy": [], "upgrade": [], "downtime": [],
                                       "nothing to do": []}
    restored = 0

    def push(rate: int) -> float:
        text = counter_deployment(NAME, target="bench", args=f"--rate {rate} --keys 4")
        repo.write(f"deployments/{NAME}.yaml", text + textwrap.indent(
            "resources: {jobmanager: {memory: 768Mi}, taskmanager: {memory: 1024Mi}}\n", " " * 6)
            if mode == "application" else text)
        repo.push(f"rate {rate}")
        return time.time()

    def job_of(result) -> str:
        return next(d for d in result.documents if d.name == NAME).status.job.id

    try:
        started = push(20)
        job = job_of(sync(settings))
        figures["first deploy"].append(observer.await_running(job) - started)
        for round_ in range(repeat):
            time.sleep(3)   # a checkpoint or two
            started = push(21 + round_)
            result = sync(settings)
            new = job_of(result)
            end = observer.await_running(new)
            figures["upgrade"].append(end - started)
            figures["downtime"].append(end - observer.last_running[job])
            saved = next(d for d in result.documents if d.name == NAME).status.last_savepoint
            latest = requests.get(f"{url_of()}/jobs/{new}/checkpoints", timeout=5).json()
            restored += (latest.get("latest") or {}).get("restored", {}).get(
                "external_path") == saved.location
            job = new
            began = time.time()
            sync(settings)
            figures["nothing to do"].append(time.time() - began)
            print(f"  {mode}: upgrade {figures['upgrade'][-1]:.2f}s, downtime "
                  f"{figures['downtime'][-1]:.2f}s", file=sys.stderr, flush=True)
    finally:
        observer.close()
        if session is not None:
            local.stop(root / mode / "flink", port=session.port)
        application.stop(workdir, NAME)
    figures["restored"] = [restored / repeat]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from agent.flink.build import build_jar

    with tempfile.TemporaryDirectory(prefix="application-mode-") as tmp:
        root = Path(tmp)
        jar = build_jar(ROOT / "spec-examples" / "jobs" / "counter" / "src", root / "build",
                        name="counter")
        results = {mode: run_mode(mode, root, jar, args.repeat)
                   for mode in ("session", "application")}
    print(f"machine: {machine()}\n")
    print("| figure (median, s) | session cluster | a cluster of its own |\n|---|---|---|")
    for figure in ("first deploy", "upgrade", "downtime", "nothing to do"):
        print(f"| {figure} | {median(results['session'][figure]):.2f} | "
              f"{median(results['application'][figure]):.2f} |")
    print(f"| savepoint restored by the new job | {results['session']['restored'][0]:.0%} | "
          f"{results['application']['restored'][0]:.0%} |")


if __name__ == "__main__":
    main()
