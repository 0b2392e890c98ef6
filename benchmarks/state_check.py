"""The cost of the state check on a real Flink 2.3 cluster (I/O: a local Flink cluster, git, a
JVM per check).

A counter job (DataStream, uids) and a SQL aggregation run with checkpoints every second; for
each, the agent's check of a changed job against a savepoint of the running one
(`agent.flink.compatibility.check_state`: one JVM builds the new job's graph and reads the
`_metadata`) is timed again and again, after a first call that also builds the inspector. Then
`plan` (`reconcile.review`) on a spec repository with the counter deployment: unchanged (no
check may run), changed (one check each), and a resume from a savepoint planned twice with the
same caches (a daemon's: the verdict remembered).

    python3 benchmarks/state_check.py --repeat 5

With FLINK_GITOPS_PYTHON naming a Python with PyFlink (tests/.pyflink/2.3.0/bin/python, made by
`python3 tests/pyflink_env.py`), the check of a PyFlink job's graph is timed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, machine, median  # noqa: E402

from agent import state_check as state_check_module  # noqa: E402
from agent.caches import Caches  # noqa: E402
from agent.config import Settings  # noqa: E402
from agent.flink import local  # noqa: E402
from agent.flink.artifacts import JobProgram  # noqa: E402
from agent.flink.build import build_jar  # noqa: E402
from agent.flink.compatibility import check_state  # noqa: E402
from agent.flink.local import flink_home  # noqa: E402
from agent.flink.python import (DRIVER_CLASS, driver_args, local_python,  # noqa: E402
                                pyflink_installed)
from agent.flink.rest import FlinkClient  # noqa: E402
from agent.flink.runner import RUNNER_CLASS, runner_args, runner_jar  # noqa: E402
from agent.flink.class_data import TOOLS_DIR_ENV  # noqa: E402
from agent.reconcile import review, sync  # noqa: E402

COUNTER = "com.example.Counter"
SQL = """\
CREATE TEMPORARY TABLE clicks (page INT, user_id INT) WITH ('connector' = 'datagen',
  'rows-per-second' = '5', 'fields.page.min' = '1', 'fields.page.max' = '8');
CREATE TEMPORARY TABLE counts (page INT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO counts SELECT page, COUNT(*) FROM clicks GROUP BY page;
"""


def savepoint_of(client: FlinkClient, program: JobProgram) -> str:
    job = uuid.uuid4().hex
    client.run_jar(client.upload_jar(program.jar), job_id=job, entry_class=program.entry_class,
                   args=program.args, parallelism=1, savepoint_path=None,
                   allow_non_restored_state=False,
                   configuration={"execution.checkpointing.interval": "1s"})
    client.await_running(job, 60)
    return client.await_savepoint(job, client.trigger_savepoint(job, target_directory=None)).location


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def checks(repeat: int, client: FlinkClient, work: Path) -> list[str]:
    cache = work / "cache"
    counter_jar = build_jar(ROOT / "spec-examples" / "jobs" / "counter" / "src", cache,
                            name="counter")
    counter = JobProgram(counter_jar, COUNTER, ["--rate", "20", "--keys", "4"])
    sql = JobProgram(runner_jar(cache), RUNNER_CLASS, runner_args("counts", SQL))
    rows = []
    for name, program, changed in [
            ("counter (DataStream, 3 operators)", counter,
             JobProgram(counter_jar, COUNTER, ["--rate", "20", "--keys", "4", "--count-uid",
                                               "counts"])),
            ("SQL aggregation (planner, 3 operators)", sql, JobProgram(
                sql.jar, RUNNER_CLASS, runner_args("counts", SQL.replace("COUNT(*)",
                                                                           "COUNT(*) + 1"))))]:
        location = savepoint_of(client, program)
        first, verdict = timed(lambda: check_state(changed, 1, {}, location, False))
        again = [timed(lambda: check_state(changed, 1, {}, location, False))[0]
                 for _ in range(repeat)]
        rows.append(f"| {name} | {first:.2f} | {median(again):.2f} | {min(again):.2f}–"
                    f"{max(again):.2f} | {verdict.summary} |")
    if pyflink_installed(local_python()):   # (FLINK_GITOPS_PYTHON: a Python with PyFlink)
        args, options = driver_args(str(ROOT / "spec-examples" / "python" / "counts.py"), True,
                                    True, [])
        driver = sorted((flink_home() / "opt").glob("flink-python*.jar"))[-1]
        python = JobProgram(driver, DRIVER_CLASS, args, options)
        seconds = [timed(lambda: _graph_only(python, location))[0]
                   for _ in range(repeat)]
        rows.append(f"| PyFlink DataStream (counts.py, 4 operators) | — | {median(seconds):.2f} "
                    f"| {min(seconds):.2f}–{max(seconds):.2f} | (timing only: its graph "
                    "against the SQL job's savepoint) |")
    return rows


def _graph_only(program: JobProgram, location: str) -> None:
    """A check whose verdict is not the point (another job's savepoint): its cost is."""
    check_state(program, 1, {}, location, False)


def cycles(client_url: str, work: Path) -> list[str]:
    """`plan` of a deployment: unchanged, changed, and a resume with changes planned twice with
    the same caches: the checks run and the seconds."""
    repo = SpecRepo(work / "repo")
    repo.write_target("bench", client_url)
    repo.add_file("jobs/counter.jar", build_jar(ROOT / "spec-examples" / "jobs" / "counter"
                                                / "src", work / "cache", name="counter"))
    settings = Settings(str(repo.remote), workdir=work / "agent")
    calls = []
    original = state_check_module.check_state

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    def push(message: str, **fields) -> None:
        repo.write("deployments/counted.yaml",
                   counter_deployment("counted", target="bench", **fields))
        repo.push(message)

    push("counted")
    assert sync(settings).exit_code == 0
    time.sleep(3)   # a completed checkpoint to check against
    state_check_module.check_state = counted
    rows = []
    with Caches.for_one_cycle() as caches:
        for what, change in [
                ("nothing changed", None),
                ("a changed argument, the first (also builds the inspector and its class "
                 "archive, once per agent)", {"args": "--rate 20 --keys 8"}),
                ("another changed argument", {"args": "--rate 20 --keys 9"}),
                ("suspended, then resumed with a change", "resume"),
                ("the same plan again, the same caches (the verdict remembered)", None)]:
            if change == "resume":
                push("suspend", state="SUSPENDED")
                assert sync(settings).exit_code == 0
                push("resume", args="--rate 20 --keys 3")
            elif change:
                push(what, **change)
            calls.clear()
            seconds, reviews = timed(lambda: review(settings, caches=caches))
            [reviewed] = reviews.reviews
            check = reviewed.plan.state_check
            rows.append(f"| {what} | {reviewed.plan.action_name or '—'} | {len(calls)} | "
                        f"{seconds:.2f} | {check.summary if check else '—'} |")
    state_check_module.check_state = original
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flink-gitops-bench-") as scratch:
        work = Path(scratch)
        cluster = local.start(work / "flink", port=free_port(), slots=8)
        try:
            client = FlinkClient(cluster.url)
            os.environ[TOOLS_DIR_ENV] = str(work / "tools")       # (built afresh, and timed)
            check_rows = checks(arguments.repeat, client, work)
            os.environ[TOOLS_DIR_ENV] = str(work / "agent-tools")
            cycle_rows = cycles(cluster.url, work)
        finally:
            local.stop(work / "flink", cluster.port)
    print(f"Machine: {machine()}\n")
    print("| job | first check s (builds the inspector) | check s, median | range | verdict |")
    print("|---|---|---|---|---|")
    print("\n".join(check_rows))
    print("\n| `plan` of the counter deployment | action | checks run | s | state |")
    print("|---|---|---|---|---|")
    print("\n".join(cycle_rows))


if __name__ == "__main__":
    main()
