"""The dialects teams bring: Ververica's DeploymentDefaults and SessionCluster, and the Flink
Kubernetes Operator's FlinkSessionJob, read as the agent's own Deployments (pure: the loader)."""

from __future__ import annotations

from agent.load import load, target_problems
from agent.reconcile import review, sync
from test_load import TARGET, VERVERICA_EXPORT

# a Ververica namespace's defaults, as its API returns them (our own test data)
DEFAULTS = """\
kind: DeploymentDefaults
apiVersion: v1
metadata:
  name: prod
  namespace: prod
spec:
  deploymentTargetName: local
  upgradeStrategy: {kind: stateful}
  restoreStrategy: {kind: latest_savepoint}
  template:
    spec:
      parallelism: 4
      flinkConfiguration:
        execution.checkpointing.interval: 10s
        pipeline.object-reuse: "true"
"""


def vvp_deployment(name: str, namespace: str = "prod", extra: str = "") -> str:
    return f"""\
kind: Deployment
apiVersion: v1
metadata:
  name: {name}
  namespace: {namespace}
spec:
{extra}  template:
    spec:
      artifact: {{kind: jar, jarUri: jobs/app.jar}}
      flinkConfiguration:
        pipeline.object-reuse: "false"
"""


SESSION_JOB = """\
apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: clicks
  labels: {team: web}
spec:
  deploymentName: local
  restartNonce: 3
  flinkConfiguration:
    execution.checkpointing.interval: 5s
  job:
    jarURI: jobs/app.jar
    entryClass: org.example.Clicks
    args: ["--rate", "5"]
    parallelism: 2
    state: running
    upgradeMode: savepoint
    savepointTriggerNonce: 7
    allowNonRestoredState: true
    checkpointTriggerNonce: 1
status:
  lifecycleState: STABLE
"""


# ---- DeploymentDefaults ----------------------------------------------------------------------

def test_defaults_are_merged_under_the_deployments_of_their_namespace_and_say_so():
    loaded = load({"targets.yaml": TARGET, "defaults.yaml": DEFAULTS,
                   "orders.yaml": vvp_deployment("orders"),
                   "other.yaml": vvp_deployment("other", "team-b",
                                                "  deploymentTargetName: local\n")})
    assert loaded.problems == []
    orders = loaded.deployments["orders"]
    spec = orders.spec.spec
    assert (spec.deployment_target_name, spec.template.spec.parallelism) == ("local", 4)
    assert spec.template.spec.flink_configuration == {          # merged key by key, its own wins
        "execution.checkpointing.interval": "10s", "pipeline.object-reuse": "false"}
    assert orders.origins["spec.template.spec.parallelism"] == "DeploymentDefaults prod"
    assert "spec.template.spec.flinkConfiguration.pipeline.object-reuse" not in orders.origins
    other = loaded.deployments["other"]
    assert other.spec.spec.template.spec.parallelism == 1 and other.origins == {}


def test_a_deployment_naming_its_cluster_or_another_artifact_kind_takes_neither_from_defaults():
    defaults = DEFAULTS.replace("  upgradeStrategy", "  sessionClusterName: shared\n"
                                "  upgradeStrategy").replace(
        "      parallelism: 4", "      parallelism: 4\n      artifact: {kind: JAR, "
                                "entryClass: org.example.Main}")
    sql = vvp_deployment("report", extra="  deploymentTargetName: local\n").replace(
        "{kind: jar, jarUri: jobs/app.jar}", "{kind: SQLSCRIPT, sqlScript: 'SELECT 1'}")
    loaded = load({"targets.yaml": TARGET, "defaults.yaml": defaults, "report.yaml": sql})
    assert loaded.problems == []
    spec = loaded.deployments["report"].spec.spec
    assert spec.session_cluster_name is None and spec.template.spec.artifact.entry_class is None


def test_defaults_that_serve_no_deployment_are_a_warning():
    loaded = load({"targets.yaml": TARGET, "defaults.yaml": DEFAULTS})
    [warning] = loaded.warnings
    assert (warning.file, warning.line) == ("defaults.yaml", 1)
    assert "serve namespace 'prod', which no Deployment is in" in warning.message


def test_defaults_that_cannot_be_read_hold_every_deployment_they_may_concern():
    files = {"targets.yaml": TARGET, "orders.yaml": vvp_deployment("orders"),
             "other.yaml": vvp_deployment("other", "team-b", "  deploymentTargetName: local\n")}
    typo = load(files | {"defaults.yaml": DEFAULTS.replace("parallelism: 4", "paralelism: 4")})
    assert {(p.file, p.line, p.name) for p in typo.problems} == {
        ("defaults.yaml", 12, "prod"), ("orders.yaml", 1, "orders")}
    [held] = typo.problems_of("Deployment", "orders")
    assert "DeploymentDefaults at defaults.yaml:12 are refused (" in held.message
    assert "held as it runs" in held.message
    assert set(typo.deployments) == {"other"}
    broken = load(files | {"defaults.yaml": DEFAULTS.replace("spec:\n", "spec: [\n", 1)})
    assert broken.deployments == {}            # not even its namespace could be read: all held
    assert {p.name for p in broken.problems} == {None, "orders", "other"}
    twice = load(files | {"defaults.yaml": DEFAULTS,
                          "more.yaml": DEFAULTS.replace("name: prod", "name: prod-2")})
    assert set(twice.deployments) == {"other"}
    assert any("written twice (defaults.yaml:1, more.yaml:1)" in p.message
               for p in twice.problems_of("Deployment", "orders"))


def test_a_bad_value_from_defaults_is_named_with_the_defaults_it_came_from():
    loaded = load({"targets.yaml": TARGET, "orders.yaml": vvp_deployment("orders"),
                   "defaults.yaml": DEFAULTS.replace("kind: stateful", "kind: sometimes")})
    messages = [p.message for p in loaded.problems]
    assert any(m.startswith("DeploymentDefaults spec.upgradeStrategy.kind") for m in messages)
    assert "orders" not in loaded.deployments


# ---- SessionCluster ----------------------------------------------------------------------------

SESSION_CLUSTER = """\
kind: SessionCluster
apiVersion: v1
metadata: {name: shared, namespace: prod}
spec:
  state: RUNNING
  deploymentTargetName: local
  flinkVersion: "1.20"
  numberOfTaskManagers: 2
"""


def test_session_cluster_name_runs_the_deployment_on_its_clusters_target():
    loaded = load({"targets.yaml": TARGET, "cluster.yaml": SESSION_CLUSTER,
                   "orders.yaml": vvp_deployment("orders", extra="  sessionClusterName: shared\n")})
    assert loaded.problems == []
    orders = loaded.deployments["orders"]
    assert orders.spec.spec.deployment_target_name == "local"
    assert orders.origins["spec.deploymentTargetName"] == "SessionCluster shared"
    assert target_problems(orders, loaded) == []
    assert [w.message.split(" ", 1)[0] for w in loaded.warnings] == [
        "spec.flinkVersion", "spec.numberOfTaskManagers"]


def test_an_unknown_session_cluster_or_both_names_are_problems_at_their_line():
    unknown = load({"targets.yaml": TARGET, "orders.yaml": vvp_deployment(
        "orders", extra="  sessionClusterName: nowhere\n")})
    [problem] = unknown.problems
    assert (problem.line, problem.name) == (7, "orders")
    assert "no SessionCluster 'nowhere' in the spec repo" in problem.message
    both = load({"targets.yaml": TARGET, "cluster.yaml": SESSION_CLUSTER,
                 "orders.yaml": vvp_deployment("orders", extra="  deploymentTargetName: local\n"
                                                               "  sessionClusterName: shared\n")})
    assert "write one of them" in both.problems[0].message


# ---- FlinkSessionJob ---------------------------------------------------------------------------

def test_a_flink_session_job_is_read_as_a_deployment_field_by_field():
    loaded = load({"targets.yaml": TARGET, "clicks.yaml": SESSION_JOB})
    assert loaded.problems == []
    clicks = loaded.deployments["clicks"].spec
    spec = clicks.spec
    artifact = spec.template.spec.artifact
    assert (artifact.kind, artifact.jar_uri, artifact.entry_class, artifact.program_args()) == (
        "JAR", "jobs/app.jar", "org.example.Clicks", ["--rate", "5"])
    assert (spec.deployment_target_name, spec.template.spec.parallelism, spec.state,
            spec.restart_nonce, spec.savepoint_trigger_nonce) == ("local", 2, "RUNNING", 3, 7)
    assert (spec.upgrade_strategy.kind, spec.restore_strategy.kind,
            spec.restore_strategy.allow_non_restored_state) == (
        "STATEFUL", "LATEST_SAVEPOINT", True)
    assert spec.template.spec.flink_configuration == {"execution.checkpointing.interval": "5s"}
    assert clicks.metadata.labels == {"team": "web"}
    assert {(w.line, w.message.split(" ", 1)[0]) for w in loaded.warnings} == {
        (20, "spec.job.checkpointTriggerNonce"), (21, "status")}


def test_the_operators_upgrade_modes_map_to_strategies():
    def strategies(mode: str) -> tuple[str, str]:
        text = SESSION_JOB.replace("upgradeMode: savepoint", mode)
        spec = load({"targets.yaml": TARGET, "clicks.yaml": text}).deployments["clicks"].spec.spec
        return spec.upgrade_strategy.kind, spec.restore_strategy.kind
    assert strategies("upgradeMode: last-state") == ("STATEFUL", "LATEST_STATE")
    last_state = load({"targets.yaml": TARGET, "clicks.yaml": SESSION_JOB.replace(
        "upgradeMode: savepoint", "upgradeMode: last-state")})
    assert any(w.line == 17 and "also takes a savepoint" in w.message
               for w in last_state.warnings)
    assert strategies("upgradeMode: stateless") == ("STATELESS", "NONE")
    assert strategies("") == ("STATELESS", "NONE")           # the operator's default
    wrong = load({"clicks.yaml": SESSION_JOB.replace("upgradeMode: savepoint",
                                                     "upgradeMode: sometimes")})
    [problem] = wrong.problems
    assert problem.line == 17 and "upgradeStrategy.kind" in problem.message


def test_a_session_job_naming_an_unknown_deployment_is_a_problem_at_its_line():
    loaded = load({"targets.yaml": TARGET, "clicks.yaml": SESSION_JOB.replace(
        "deploymentName: local", "deploymentName: basic-session-cluster")})
    [problem] = target_problems(loaded.deployments["clicks"], loaded)
    assert (problem.file, problem.line) == ("clicks.yaml", 7)
    assert "no DeploymentTarget 'basic-session-cluster'" in problem.message


def test_a_session_job_image_jar_is_read_as_a_file_with_a_warning():
    loaded = load({"targets.yaml": TARGET, "clicks.yaml": SESSION_JOB.replace(
        "jarURI: jobs/app.jar", "jarURI: local:///opt/flink/usrlib/clicks.jar")})
    artifact = loaded.deployments["clicks"].spec.spec.template.spec.artifact
    assert artifact.jar_uri == "file:///opt/flink/usrlib/clicks.jar"
    assert any("names a file of the operator's Flink image" in w.message and w.line == 12
               for w in loaded.warnings)


def test_a_flink_deployment_is_noted_as_a_cluster_to_write_as_a_target():
    loaded = load({"cluster.yaml": "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\n"
                                   "metadata: {name: basic-session-cluster}\nspec: {}\n"})
    assert loaded.problems == [] and "write a DeploymentTarget" in loaded.notes[0].message


def test_a_session_job_and_a_deployment_of_one_name_are_duplicates():
    loaded = load({"targets.yaml": TARGET, "clicks.yaml": SESSION_JOB,
                   "d.yaml": vvp_deployment("clicks", extra="  deploymentTargetName: local\n")})
    assert loaded.deployments == {}
    assert all("duplicate Deployment name 'clicks'" in p.message for p in loaded.problems)


# ---- convert -------------------------------------------------------------------------------------

def test_convert_round_trips_every_dialect_to_the_same_deployments():
    from agent.convert import converted
    from agent.diff import spec_document
    from agent.load import parse_file

    files = {"targets.yaml": TARGET + "---\n" + SESSION_CLUSTER, "defaults.yaml": DEFAULTS,
             "clicks.yaml": SESSION_JOB,
             "export.yaml": VERVERICA_EXPORT.replace("name: orders", "name: orders-eu"),
             "orders.yaml": vvp_deployment("orders", extra="  sessionClusterName: shared\n")}
    text, problems = converted({path: parse_file(path, data) for path, data in files.items()})
    assert problems == []
    assert "# clicks.yaml:1 (a FlinkSessionJob)" in text
    assert "# left out: spec.deploymentTargetId: 0f3e9a11-0000-4000-8000-00000000a001" in text
    assert "apiVersion: flink.apache.org" not in text and "kind: stateful" not in text
    before, after = load(files), load({"all.yaml": text})
    assert after.problems == [] and set(after.deployments) == set(before.deployments) == {
        "clicks", "orders", "orders-eu"}
    for name, located in before.deployments.items():
        again = after.deployments[name]
        assert spec_document(again.spec) == spec_document(located.spec)
        assert again.spec.job_hash() == located.spec.job_hash()
        assert again.origins == located.origins


# ---- on real Flink -----------------------------------------------------------------------------

def test_a_ververica_export_with_its_defaults_and_session_cluster_deploys_and_upgrades_with_state(
        spec_repo, settings, flink, counter_jar, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    spec_repo.write("vvp/cluster.yaml", SESSION_CLUSTER.replace(
        "deploymentTargetName: local", "deploymentTargetName: test").replace("prod", "analytics"))
    defaults = """\
        kind: DeploymentDefaults
        apiVersion: v1
        metadata: {name: analytics, namespace: analytics}
        spec:
          sessionClusterName: shared
          upgradeStrategy: {kind: stateful}
          restoreStrategy: {kind: latest_savepoint}
          template:
            spec:
              parallelism: 1
              flinkConfiguration: {execution.checkpointing.interval: 1s}
        """
    spec_repo.write("vvp/defaults.yaml", defaults)
    spec_repo.write("vvp/vvp-counter.yaml", """\
        kind: Deployment
        apiVersion: v1
        metadata:
          id: 8c1e2f3a-0000-4000-8000-000000000042
          name: vvp-counter
          displayName: Counter (analytics)
          namespace: analytics
          resourceVersion: 3
          createdAt: 2025-06-01T08:00:00.000Z
        spec:
          state: running
          jobFailureExpirationTime: 7d
          template:
            spec:
              artifact:
                kind: jar
                jarUri: jobs/counter.jar
                entryClass: com.example.Counter
                mainArgs: --rate 20 --keys 4
        status:
          state: RUNNING
        """)
    first = deployed_with_state(spec_repo, settings, rest, "vvp-counter")

    spec_repo.write("vvp/defaults.yaml", defaults.replace("parallelism: 1", "parallelism: 2"))
    spec_repo.push("the namespace's defaults: parallelism 2")
    [planned] = review(settings).reviews
    assert planned.action == "STATEFUL_UPGRADE"
    assert [(c.path, c.new, planned.origin(c.path)) for c in planned.changes] == [
        ("spec.template.spec.parallelism", 2, "DeploymentDefaults analytics")]
    assert rest.parallelism(upgraded_with_state(spec_repo, settings, rest, "vvp-counter",
                                                first)) == 2


def test_a_flink_session_job_manifest_deploys_and_upgrades_with_state(
        spec_repo, settings, flink, counter_jar, rest):
    spec_repo.write_target("session-cluster", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    manifest = """\
        apiVersion: flink.apache.org/v1beta1
        kind: FlinkSessionJob
        metadata:
          name: operator-counter
        spec:
          deploymentName: session-cluster
          flinkConfiguration:
            execution.checkpointing.interval: 1s
          job:
            jarURI: jobs/counter.jar
            entryClass: com.example.Counter
            args: ["--rate", "20", "--keys", "4"]
            parallelism: 1
            upgradeMode: savepoint
            state: running
        """
    spec_repo.write("operator/counter.yaml", manifest)
    first = deployed_with_state(spec_repo, settings, rest, "operator-counter")
    spec_repo.write("operator/counter.yaml", manifest.replace('"4"]', '"8"]'))
    spec_repo.push("args changed")
    upgraded = upgraded_with_state(spec_repo, settings, rest, "operator-counter", first)

    spec_repo.write("operator/counter.yaml", manifest.replace(
        "deploymentName: session-cluster", "deploymentName: session-clutser"))
    spec_repo.push("a typo in deploymentName")
    assert sync(settings).exit_code == 1
    status = spec_repo.status_of("operator-counter")
    [error] = status["errors"]
    assert (status["sync"], error["file"], error["line"]) == ("INVALID", "operator/counter.yaml", 6)
    assert "no DeploymentTarget 'session-clutser' in the spec repo" in error["message"]
    assert rest.running() == [upgraded]                  # left running as it is


def deployed_with_state(spec_repo, settings, rest, name: str) -> str:
    """The spec repo as written, pushed and synced: the first job of `name`, checkpointed."""
    spec_repo.push(f"{name} as it is")
    assert sync(settings).exit_code == 0
    first = rest.job(name, 1)
    rest.wait_checkpoint(first)
    return first


def upgraded_with_state(spec_repo, settings, rest, name: str, first: str) -> str:
    """Synced once more: the job after `first`, restored from the savepoint `first` stopped
    with (a STATEFUL upgrade)."""
    assert sync(settings).exit_code == 0
    upgraded = rest.job(name, 2)
    status = spec_repo.status_of(name)
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.restored_from(upgraded) == status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["jobId"] == first
    return upgraded
