"""Cost of a cycle at scale: 100, 1,000 and 10,000 deployments over 10 to 50 clusters of a fake
Flink REST server (benchmarks/fake_flink.py) (I/O: git, processes, HTTP).

For every size it builds a spec repository, starts the agent in a process of its own (as the
daemon runs it), deploys everything once, then runs cycles with nothing to do (A), cycles with
one changed spec (B) and the cycle after each of those (C: nothing to do, but the status branch
was just rewritten) interleaved, A B C A B C ..., and measures per cycle: wall time, CPU time (the
agent's own, and its git child processes'), peak RSS (the high-water mark reset before each
cycle), REST requests per cluster, state-changing Flink calls, git processes started, status
commits. A "cold" no-op cycle is also measured: a fresh process, as `flink-gitops sync` runs.
Prints a Markdown table (medians over the repetitions).

    python3 benchmarks/scale.py                       # 100, 1000, 10000; 5 repetitions
    python3 benchmarks/scale.py --sizes 1000 --repeat 3 --profile /tmp/cycle   # cProfile stats:
        # /tmp/cycle.1000.noop, .change (extra cycles) and .cold (an extra fresh process)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import ROOT, SpecRepo, counter_deployment, free_port, load_average, machine, median  # noqa: E402,E501

CLUSTERS = {100: 10, 1000: 25, 10000: 50}
METRICS = ["wall_s", "cpu_s", "git_cpu_s", "peak_rss_mb", "rest_max_per_cluster",
           "overview_max_per_cluster", "changing_calls", "git_processes", "status_commits"]


def build_repo(root: Path, size: int, clusters: int, fake_url: str) -> SpecRepo:
    """`size` deployments of the counter job (a stand-in jar: the fake runs nothing) spread
    round-robin over `clusters` targets of the fake server."""
    repo = SpecRepo(root)
    for c in range(clusters):
        repo.write_target(f"c{c:02d}", f"{fake_url}/c/n{size}-c{c:02d}")
    for d in range(size):
        repo.write(f"deployments/d{d:05d}.yaml",
                   counter_deployment(f"d{d:05d}", target=f"c{d % clusters:02d}"))
    (repo.checkout / "jobs").mkdir()
    with zipfile.ZipFile(repo.checkout / "jobs" / "counter.jar", "w") as jar:   # (the fake
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")      # runs nothing)
        jar.writestr("com/example/Counter.class", random.Random(1).randbytes(4096))
    repo.push("specs")
    return repo


# --- the agent's process ---------------------------------------------------------------------

class Instruments:
    """Counters around one cycle in the agent's process."""

    def __init__(self, fake_url: str):
        import requests

        self.fake_url = fake_url
        self.http = requests.Session()
        self.git_processes = 0
        original = subprocess.Popen.__init__
        instruments = self

        def counting(self, args, *rest, **kwargs):
            first = args[0] if isinstance(args, (list, tuple)) else str(args).split()[0]
            if os.path.basename(str(first)) == "git":
                instruments.git_processes += 1
            original(self, args, *rest, **kwargs)

        subprocess.Popen.__init__ = counting

    def measure(self, cycle, repo: SpecRepo) -> dict:
        self.http.post(f"{self.fake_url}/_stats/reset")
        Path("/proc/self/clear_refs").write_text("5")   # resets the peak RSS (VmHWM)
        commits, gits = len(repo.status_commits()), self.git_processes
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, wall = time.process_time(), time.perf_counter()
        cycle()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
                    .splitlines() if line.startswith("VmHWM"))
        gits = self.git_processes - gits
        stats = self.http.get(f"{self.fake_url}/_stats").json()
        per_cluster = [sum(c.values()) for c in stats.values()] or [0]
        overviews = [c.get("GET /jobs/overview", 0) for c in stats.values()] or [0]
        changing = sum(n for c in stats.values() for k, n in c.items() if not k.startswith("GET"))
        return {"wall_s": wall, "cpu_s": cpu,
                "git_cpu_s": after.ru_utime + after.ru_stime - children.ru_utime
                - children.ru_stime, "peak_rss_mb": peak / 1024,
                "rest_max_per_cluster": max(per_cluster), "rest_total": sum(per_cluster),
                "overview_max_per_cluster": max(overviews), "changing_calls": changing,
                "git_processes": gits, "status_commits": len(repo.status_commits()) - commits,
                "load": load_average()}


def worker(args) -> None:
    """Runs in the agent's process: deploy, then A/B cycles; one JSON line per measurement."""

    from agent.caches import Caches
    from agent.config import Settings
    from agent.reconcile import keep_quiet, sync as one_cycle

    if args.allocations:   # (every figure of this run is slowed by it)
        import tracemalloc
        tracemalloc.start()
    caches = Caches()   # as the daemon runs cycles: one owner of memos, settled after each

    def sync(settings: Settings):
        result = one_cycle(settings, caches=caches)
        caches.settle()
        return result
    repo = SpecRepo.__new__(SpecRepo)
    repo.remote, repo.checkout = Path(args.remote), Path(args.checkout)
    settings = Settings(str(repo.remote), workdir=Path(args.workdir))
    instruments = Instruments(args.fake_url)

    def emit(kind: str, figures: dict) -> None:
        print(json.dumps({"kind": kind, **figures}), flush=True)

    if args.cold:
        if args.profile:   # (an extra fresh process, under cProfile, not measured)
            return _profiled(sync, settings, args.profile)()
        emit("noop-cold", instruments.measure(lambda: sync(settings), repo))
        return
    emit("deploy", instruments.measure(lambda: sync(settings), repo))
    sync(settings)  # settles (the first cycle after a deploy records what it observes)
    sync(settings)
    names = sorted(p.stem for p in (repo.checkout / "deployments").glob("*.yaml"))
    for round_ in range(args.repeat + (1 if args.profile else 0)):
        profiling = round_ == args.repeat   # an extra round, under cProfile, not measured
        noop = _profiled(sync, settings, args.profile_noop if profiling else None)
        if profiling:
            noop()
        else:
            emit("noop", instruments.measure(noop, repo))
        name = names[round_ * 7919 % len(names)]
        repo.write(f"deployments/{name}.yaml", counter_deployment(
            name, target=f"c{int(name[1:]) % args.clusters:02d}", parallelism=2 + round_))
        repo.push(f"rescale {name}")
        change = _profiled(sync, settings, args.profile if profiling else None)
        if profiling:
            change()
            break
        emit("change", instruments.measure(change, repo))
        emit("noop-after-change", instruments.measure(lambda: sync(settings), repo))
    sync(settings)   # (quiet again after the profiled change)
    keep_quiet(settings, caches)   # as a daemon does when it stops
    if args.allocations:
        _write_allocations(args.allocations)


def _write_allocations(path: str) -> None:
    """What the agent's process holds after its cycles, by the line that allocated it: the
    top 30 of tracemalloc, and the total."""
    import tracemalloc

    top = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]).statistics("lineno")
    lines = [f"{sum(s.size for s in top) / 2**20:.1f} MiB held in {len(top)} places; the top 30:"]
    lines += [f"{s.size / 2**20:8.1f} MiB {s.count:9,} blocks  {s.traceback[0]}" for s in top[:30]]
    Path(path).write_text("\n".join(lines) + "\n")


def _profiled(cycle, settings, profile_to: str | None):
    """The cycle, under cProfile (stats written to `profile_to`) when asked."""
    if not profile_to:
        return lambda: cycle(settings)

    def profiled():
        import cProfile

        profile = cProfile.Profile()
        profile.runcall(cycle, settings)
        profile.dump_stats(profile_to)
    return profiled


# --- the benchmark -----------------------------------------------------------------------------

def run_size(size: int, clusters: int, repeat: int, cold_repeat: int, fake_url: str,
             profile: str | None, allocations: str | None = None) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix=f"scale-{size}-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        repo = build_repo(root, size, clusters, fake_url)
        print(f"# {size} deployments / {clusters} clusters: repo built in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--worker", "--remote", str(repo.remote),
                   "--checkout", str(repo.checkout), "--workdir", str(root / "agent"),
                   "--fake-url", fake_url, "--repeat", str(repeat), "--clusters", str(clusters)]
        profiles = ["--profile", f"{profile}.{size}.change", "--profile-noop",
                    f"{profile}.{size}.noop"] if profile else []
        profiles += ["--allocations", f"{allocations}.{size}"] if allocations else []
        for line in _lines(command + profiles):
            results.append({"size": size, "clusters": clusters, **line})
        for _ in range(cold_repeat):
            for line in _lines(command + ["--cold"]):
                results.append({"size": size, "clusters": clusters, **line})
        if profile:
            _lines(command + ["--cold", "--profile", f"{profile}.{size}.cold"])
    return results


def _lines(command: list[str]) -> list[dict]:
    process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if process.returncode != 0:
        raise SystemExit(f"the agent's process failed:\n{process.stderr[-4000:]}")
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(f"  {line['kind']}: {line['wall_s']:.2f}s wall, {line['cpu_s']:.2f}s cpu, "
              f"{line['peak_rss_mb']:.0f} MB, {line['rest_total']} requests, "
              f"{line['git_processes']} git, load {line['load']}", file=sys.stderr, flush=True)
    return lines


def table(results: list[dict]) -> str:
    rows = ["| deployments | clusters | cycle | runs | wall s | CPU s (agent) | CPU s (git) | "
            "peak RSS MB | REST req/cluster (max) | jobs-overview/cluster (max) | "
            "state-changing calls | git processes | status commits | load (1/5/15 min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {"deploy": 0, "noop": 1, "change": 2, "noop-after-change": 3, "noop-cold": 4}
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        groups.setdefault((result["size"], result["clusters"], result["kind"]), []).append(result)
    for (size, clusters, kind), items in sorted(groups.items(),
                                                key=lambda g: (g[0][0], order[g[0][2]])):
        def m(key, digits=2, items=items):
            return f"{median([i[key] for i in items]):.{digits}f}"
        rows.append(f"| {size:,} | {clusters} | {kind} | {len(items)} | {m('wall_s')} | "
                    f"{m('cpu_s')} | {m('git_cpu_s')} | {m('peak_rss_mb', 0)} | "
                    f"{m('rest_max_per_cluster', 0)} | {m('overview_max_per_cluster', 0)} | "
                    f"{m('changing_calls', 0)} | {m('git_processes', 0)} | "
                    f"{m('status_commits', 0)} | {items[-1]['load']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold-repeat", type=int, default=2,
                        help="no-op cycles measured in a fresh process each")
    parser.add_argument("--profile", help="write cProfile stats of a change cycle, a no-op cycle "
                                          "and a fresh process's no-op cycle (each an extra "
                                          "one) to <this>.<size>.{change,noop,cold}")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--allocations", help="run the agent's process under tracemalloc (its "
                                              "figures are then slower than they are) and write "
                                              "what it holds after its cycles to <this>.<size>")
    # the agent's process
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--remote", "--checkout", "--workdir", "--fake-url", "--profile-noop"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--clusters", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    port = free_port()
    fake = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fake_flink.py"),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        fake.stdout.readline()  # listening
        fake_url = f"http://127.0.0.1:{port}"
        results = []
        for size in [int(s) for s in args.sizes.split(",")]:
            clusters = CLUSTERS.get(size, max(10, min(50, size // 200)))
            results += run_size(size, clusters, args.repeat, args.cold_repeat, fake_url,
                                args.profile, args.allocations)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nMachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
