"""What reading jars' identities costs a cycle (issue 15, point 4): N jars in a real
S3-compatible server (moto's, in its own process) and N on a real http server (Python's, in its
own process, Last-Modified and no ETag, the common case of a plain file server); per store, the
wall time of a cycle's identity reads as the agent's assessment makes them (`agent.job_inputs`
`read_all`: READERS at a time, with the memo a daemon keeps from cycle to cycle), the first
cycle and the later ones, and the requests the servers received per jar a later cycle.

    python3 benchmarks/artifact_identity.py [--jars 100,1000] [--repeat 3]

Both servers log one line per request, which is how requests are counted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from figures import ROOT, free_port, machine, median


def serve(command: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    return server


def wait_up(url: str) -> None:
    import requests
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def requests_logged(log: Path) -> int:
    """The requests a server logged (one line each: `... "HEAD /path HTTP/1.1" 200 -`)."""
    return sum('" ' in line and "HTTP/1." in line
               for line in log.read_text(errors="replace").splitlines())


def deployments(uris: list[str]) -> dict:
    """A Deployment of the counter job per jar, as `read_all` takes them."""
    from agent.load import load
    from agent.model.spec import ArtifactStores
    from figures import counter_deployment
    texts = {f"d/{i}.yaml": counter_deployment(f"d{i}").replace("jobs/counter.jar", uri)
             for i, uri in enumerate(uris)}
    loaded = load(texts)
    return {name: (located, ArtifactStores(), None)
            for name, located in loaded.deployments.items()}


def one_cycle(wanted: dict, known, workdir: Path) -> float:
    from agent.job_inputs import read_all
    started = time.perf_counter()
    read = read_all(wanted, lambda path: None, workdir, False, known)
    wall = time.perf_counter() - started
    failed = [r for r in read.values() if isinstance(r, Exception) or r[0].artifact is None]
    assert not failed, failed[:1]
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jars", default="100,1000", help="jar counts (default 100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="cycles per count (default 3)")
    options = parser.parse_args()
    sizes = [int(n) for n in options.jars.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        s3_port, http_port = free_port(), free_port()
        s3_log, http_log = scratch / "s3.log", scratch / "http.log"
        site = scratch / "site"
        site.mkdir()
        for i in range(max(sizes)):
            (site / f"job-{i}.jar").write_bytes(b"PK\x05\x06" + bytes(18) + str(i).encode())
        servers = [serve([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                          str(s3_port)], s3_log),
                   serve([sys.executable, "-m", "http.server", "-b", "127.0.0.1",
                          str(http_port)], http_log, cwd=site)]
        try:
            endpoint = f"http://127.0.0.1:{s3_port}"
            wait_up(endpoint)
            wait_up(f"http://127.0.0.1:{http_port}/")
            os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                              AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
            import boto3
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            client.create_bucket(Bucket="jars")
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: client.put_object(Bucket="jars", Key=f"job-{i}.jar",
                                                          Body=b"PK" + str(i).encode()),
                              range(max(sizes))))
            print(f"Machine: {machine()}; {options.repeat} cycle(s) a row\n")
            print("| store | jars | first cycle s | later cycles s (median) | per jar ms | "
                  "requests per jar a later cycle |")
            print("|---|---|---|---|---|---|")
            for store, uri, log in (
                    ("S3 (moto)", "s3://jars/job-{}.jar", s3_log),
                    ("http (Last-Modified)", f"http://127.0.0.1:{http_port}/job-{{}}.jar",
                     http_log)):
                for size in sizes:
                    from agent.caches import Caches
                    known = Caches().artifacts
                    wanted = deployments([uri.format(i) for i in range(size)])
                    first = one_cycle(wanted, known, scratch)
                    before = requests_logged(log)
                    walls = [one_cycle(wanted, known, scratch) for _ in range(options.repeat)]
                    sent = requests_logged(log) - before
                    wall = median(walls)
                    print(f"| {store} | {size:,} | {first:.2f} | {wall:.2f} | "
                          f"{wall / size * 1000:.2f} | {sent / size / options.repeat:.2f} |")
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT)]
    raise SystemExit(main())
