"""DeploymentTarget -> a connected FlinkClient; the local kind started on demand (I/O).

Header values may name the agent's environment (`${FLINK_PROD_TOKEN}`); they are expanded here,
at the edge, and never stored anywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import ConfigError, SecretMissing
from agent.flink import local
from agent.logs import register_secret
from agent.memo import Memo
from agent.flink.deployment_clusters import DeploymentClusters
from agent.flink.rest import FlinkClient
from agent.model.spec import DEFAULT_REQUEST_TIMEOUT_S, DeploymentTarget, http_url
from agent.secrets import expand


def connect(target: DeploymentTarget, workdir: Path, start_local: bool = True,
            versions: Memo | None = None,
            cache_dir: Path | None = None) -> FlinkClient | DeploymentClusters:
    """A client of the target's cluster; a `local` target's cluster is started if it is not up
    (one in application mode: its deployments' clusters, each started by its job's run, their
    memory flags remembered in `cache_dir`). `versions` remembers the clusters' Flink versions
    across cycles."""
    spec = target.spec
    if spec.cluster_per_deployment:
        return DeploymentClusters(workdir, DEFAULT_REQUEST_TIMEOUT_S, cache_dir)
    if spec.local is not None:
        if start_local:
            cluster = local.start(workdir, port=spec.local.port, slots=spec.local.slots,
                                  configuration=spec.local.flink_configuration)
            return FlinkClient(cluster.url, versions=versions)
        return FlinkClient(f"http://127.0.0.1:{spec.local.port}", versions=versions)
    try:
        url = http_url(expand(spec.flink.url))
        headers = {k: expand(v) for k, v in spec.flink.headers.items()}
    except (SecretMissing, ValueError) as error:
        raise ConfigError(f"DeploymentTarget {target.name}: {error}") from None
    for value in headers.values():
        register_secret(value)
        register_secret(value.split(" ", 1)[-1])  # the token of "Bearer <token>"
    tls = spec.flink.tls
    for field, path in (("caFile", tls.ca_file), ("certFile", tls.cert_file),
                        ("keyFile", tls.key_file)):
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"DeploymentTarget {target.name}: tls.{field} {path} cannot be "
                              "read on the agent's machine")
    verify: bool | str = tls.ca_file if (tls.verify and tls.ca_file) else tls.verify
    cert = (tls.cert_file, tls.key_file) if tls.cert_file and tls.key_file else tls.cert_file
    return FlinkClient(url, headers=headers, verify=verify, cert=cert,
                       timeout=spec.flink.request_timeout_seconds, versions=versions)

