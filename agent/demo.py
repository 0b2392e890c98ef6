"""`flink-gitops demo`: the whole story on this machine (I/O: git, processes, Flink).

Makes a spec repository from `spec-examples/` (with the counter job built from its Java source,
three SQL deployments — one in a Flink cluster of its own, application mode — and the PyFlink
job when a Python with PyFlink is here), starts the local Flink, syncs (the jobs start), commits
a parallelism change of the counter, syncs again (a stateful upgrade: savepoint, restore), and
prints the dashboard of the status branch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import requests
from rich.console import Console

from agent.config import DEFAULT_STATUS_BRANCH, Settings
from agent.errors import ConfigError, SourceError
from agent.flink import application, local
from agent.flink.build import build_jar
from agent.flink.python import local_python, pyflink_installed
from agent.reconcile import SyncResult, sync
from agent.terminal import print_sync, say

EXAMPLES = Path(__file__).resolve().parent.parent / "spec-examples"
DEPLOYMENT_FILE = "deployments/counter.yaml"


def run_demo(home: Path, port: int, keep: bool, console: Console) -> int:
    if not EXAMPLES.is_dir():
        raise ConfigError(f"spec-examples not found at {EXAMPLES}: run the demo from a checkout "
                          "of flink-gitops (pip install -e .)")
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    remote, checkout = home / "specs.git", home / "specs"
    workdir = home / "agent"
    console.rule("1. a spec repository")
    _make_spec_repo(remote, checkout, port, workdir)
    console.print(f"spec repo: {remote} (a work tree of it: {checkout})")

    console.rule("2. the local Flink cluster")
    cluster = local.start(workdir, port=port)
    console.print(f"Flink at {cluster.url}")
    settings = Settings(str(remote), workdir=workdir)
    try:
        console.rule("3. sync: the job starts")
        first = _sync(settings, console)
        console.print("letting the job count for a few seconds…")
        time.sleep(5)
        console.rule("4. git push of a parallelism change, then sync: a stateful upgrade")
        _commit_parallelism(checkout, 2)
        second = _sync(settings, console)
        _show_restore(cluster.url, second, console)
        console.rule("5. the dashboard on the status branch")
        dashboard = _git(checkout, "show", f"origin/{DEFAULT_STATUS_BRANCH}:README.md",
                         fetch=True)
        console.print(dashboard, markup=False, highlight=False)
        console.rule("where everything is")
        console.print(f"spec repo:       {remote}\n"
                      f"status branch:   git -C {checkout} log origin/{DEFAULT_STATUS_BRANCH}\n"
                      f"Flink UI:        {cluster.url}\n"
                      f"Flink logs:      {cluster.log_dir}\n"
                      f"savepoints:      {cluster.savepoint_dir}")
        for own in application.clusters(workdir):
            console.print(f"{own.deployment + ':':<16} its own cluster at {own.url} (application "
                          f"mode; logs, savepoints: {own.home})")
        return max(first.exit_code, second.exit_code)
    finally:
        if keep:
            console.print(f"--keep: Flink keeps running; stop it with "
                          f"`flink-gitops local stop --port {port} --workdir {workdir}` (and "
                          f"order-totals' own cluster with `flink-gitops local stop --deployment "
                          f"order-totals --workdir {workdir}`)")
        else:
            local.stop(workdir, port=port)
            for own in application.clusters(workdir):
                application.stop(workdir, own.deployment)
            console.print("stopped the local Flink clusters")


def _make_spec_repo(remote: Path, checkout: Path, port: int, workdir: Path) -> None:
    _git(remote.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    _git(remote.parent, "clone", "--quiet", str(remote), str(checkout))
    for item in ("targets", "deployments", "sql"):
        shutil.copytree(EXAMPLES / item, checkout / item)
    if pyflink_installed(local_python()):   # the Python job too, where it can run
        shutil.copytree(EXAMPLES / "python", checkout / "python")
    jar = build_jar(EXAMPLES / "jobs" / "counter" / "src", workdir / "build", name="counter")
    (checkout / "jobs").mkdir()
    shutil.copy(jar, checkout / "jobs" / "counter.jar")
    target = checkout / "targets" / "local.yaml"
    target.write_text(re.sub(r"port: \d+", f"port: {port}", target.read_text()))
    _git(checkout, "add", ".")
    _git(checkout, "commit", "--quiet", "-m", "counter: a stateful counting job")
    _git(checkout, "push", "--quiet", "origin", "HEAD:main")


def _commit_parallelism(checkout: Path, parallelism: int) -> None:
    spec = checkout / DEPLOYMENT_FILE
    spec.write_text(re.sub(r"parallelism: \d+", f"parallelism: {parallelism}", spec.read_text()))
    _git(checkout, "commit", "--quiet", "-am", f"counter: parallelism {parallelism}")
    _git(checkout, "push", "--quiet", "origin", "HEAD:main")


def _sync(settings: Settings, console: Console) -> SyncResult:
    result = sync(settings)
    print_sync(result)
    for name, outcome in result.outcomes.items():
        say(name, "bold", outcome.message, console)
    return result


def _show_restore(url: str, result: SyncResult, console: Console) -> None:
    job = next(d for d in result.documents if d.name == "counter").status.job
    restored = requests.get(f"{url}/jobs/{job.id}/checkpoints", timeout=10).json()
    restored = (restored.get("latest") or {}).get("restored") or {}
    console.print(f"Flink says job {job.id} restored from: "
                  f"{restored.get('external_path', 'nothing yet')}")


DEMO_USER = {"GIT_AUTHOR_NAME": "demo user", "GIT_AUTHOR_EMAIL": "demo@localhost",
             "GIT_COMMITTER_NAME": "demo user", "GIT_COMMITTER_EMAIL": "demo@localhost"}


def _git(where: Path, *args: str, fetch: bool = False) -> str:
    if fetch:
        _git(where, "fetch", "--quiet", "origin")
    process = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                             env={**os.environ, **DEMO_USER})
    if process.returncode != 0:
        raise SourceError(f"git {args[0]} in {where} failed: {process.stderr.strip()}")
    return process.stdout
