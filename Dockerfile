# flink-gitops agent image: the agent, Java 17 (for the embedded local Flink and for building
# Java jobs), the Flink jars of the `local` extra, and ssh-keygen and gpgv (git's verification of
# signed commits: --allowed-signers, --trusted-gpg-keyring). Runs as a non-root user.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends git openjdk-17-jdk-headless openssh-client gpgv \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/flink-gitops
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY spec-examples ./spec-examples
COPY policies ./policies
RUN pip install --no-cache-dir -e ".[local]"

RUN useradd --create-home --uid 10001 flink-gitops
USER flink-gitops
ENV FLINK_GITOPS_WORKDIR=/home/flink-gitops/work
# The SQL runner (agent/flink/sql/SqlRunner.java) and the state inspector
# (agent/flink/state/StateInspector.java), compiled against the Flink jars now rather than at their
# first use: the runner into the work dir's artifact cache (it is the SQL jobs' jar), both as the
# agent's tools into the user's cache (agent/flink/tool.py), where the agent looks.
RUN python -c "from agent.config import default_workdir; from agent.flink.runner import runner_jar, \
RUNNER_SOURCE, RUNNER_NAME; from agent.flink.build import build_jar; from agent.flink.tool import \
tools_dir; from agent.flink.compatibility import INSPECTOR_NAME, INSPECTOR_SOURCE; \
print(runner_jar(default_workdir() / 'artifacts'), build_jar(RUNNER_SOURCE, tools_dir(), \
name=RUNNER_NAME), build_jar(INSPECTOR_SOURCE, tools_dir(), name=INSPECTOR_NAME))"

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
ENTRYPOINT ["flink-gitops"]
# e.g. docker run -e FLINK_GITOPS_RUN_REPO=https://git.example.com/flink-specs.git IMAGE
CMD ["run", "--listen", "0.0.0.0:8080"]
