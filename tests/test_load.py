"""Loading spec files: every document becomes a spec or a problem with file and line."""

from agent.load import load

TARGET = """\
apiVersion: v1
kind: DeploymentTarget
metadata: {name: local}
spec:
  local: {port: 8081}
"""

DEPLOYMENT = """\
apiVersion: v1
kind: Deployment
metadata:
  name: {name}
  labels: {{team: payments}}
spec:
  deploymentTargetName: local
  template:
    spec:
      artifact:
        jarUri: jobs/app.jar
        entryClass: com.example.App
        mainArgs: --window "10 s" --fast
      parallelism: 2
      flinkConfiguration:
        execution.checkpointing.interval: 10s
        pipeline.object-reuse: true
"""


def test_a_valid_deployment_and_target_load_with_their_defaults():
    result = load({"t.yaml": TARGET, "d.yaml": DEPLOYMENT.format(name="orders")})
    assert result.problems == []
    orders = result.deployments["orders"].spec
    assert orders.spec.upgrade_strategy.kind == "STATEFUL"
    assert orders.spec.restore_strategy.kind == "LATEST_SAVEPOINT"
    assert orders.spec.template.spec.artifact.program_args() == ["--window", "10 s", "--fast"]
    assert orders.spec.template.spec.flink_configuration["pipeline.object-reuse"] == "true"
    assert result.targets["local"].spec.spec.local.port == 8081


def test_an_unknown_field_is_an_error_naming_file_and_line():
    text = DEPLOYMENT.format(name="orders").replace("  parallelism: 2", "  paralelism: 2")
    result = load({"deployments/orders.yaml": text})
    [problem] = result.problems
    assert (problem.file, problem.line) == ("deployments/orders.yaml", 14)
    assert "paralelism" in problem.message and "unknown field" in problem.message
    assert problem.name == "orders"


def test_a_bad_document_never_hides_the_other_documents_of_its_file():
    text = DEPLOYMENT.format(name="bad") + "---\nkind: [broken\n---\n" + DEPLOYMENT.format(
        name="good")
    text = text.replace("parallelism: 2", "parallelism: 0", 1)
    result = load({"all.yaml": text})
    assert set(result.deployments) == {"good"}
    messages = [str(p) for p in result.problems]
    assert any("all.yaml:14:" in m and "parallelism" in m for m in messages)
    assert any(m.startswith("all.yaml:19: YAML syntax error") for m in messages)


def test_duplicate_names_are_an_error_for_both_documents():
    result = load({"a.yaml": DEPLOYMENT.format(name="orders"),
                   "b.yaml": DEPLOYMENT.format(name="orders")})
    assert "orders" not in result.deployments
    assert sorted(p.file for p in result.problems) == ["a.yaml", "b.yaml"]
    assert all("duplicate Deployment name 'orders'" in p.message for p in result.problems)


def test_ververica_fields_without_effect_warn_but_load():
    text = DEPLOYMENT.format(name="orders").replace(
        "      parallelism: 2", "      parallelism: 2\n      resources: {jobmanager: {cpu: 1}}")
    result = load({"d.yaml": text})
    assert "orders" in result.deployments
    assert any("resources has no effect" in w.message for w in result.warnings)


VERVERICA_EXPORT = """\
kind: Deployment
apiVersion: v1
metadata:
  id: 5b8f3a2e-6c1d-4e7a-9f00-2d4c8b1a7e55
  name: orders
  displayName: Orders (EU)
  namespace: default
  resourceVersion: 7
  createdAt: 2024-03-01T09:15:00.000Z
  modifiedAt: 2024-03-02T10:00:00.000Z
  labels: {team: payments}
spec:
  state: Running
  deploymentTargetId: 0f3e9a11-0000-4000-8000-00000000a001
  deploymentTargetName: local
  jobFailureExpirationTime: 7d
  upgradeStrategy: {kind: stateful}
  restoreStrategy: {kind: latest_state, allowNonRestoredState: false}
  maxSavepointCreationAttempts: 4
  maxJobCreationAttempts: 4
  template:
    spec:
      artifact:
        kind: jar
        jarUri: jobs/app.jar
      parallelism: 2
"""


def test_a_ververica_export_loads_with_its_enums_in_any_case_and_warnings_for_its_extras():
    result = load({"export.yaml": VERVERICA_EXPORT})
    assert result.problems == []
    spec = result.deployments["orders"].spec.spec
    assert (spec.state, spec.upgrade_strategy.kind, spec.restore_strategy.kind,
            spec.template.spec.artifact.kind) == ("RUNNING", "STATEFUL", "LATEST_STATE", "JAR")
    warned = [w.message.split(" ", 1)[0] for w in result.warnings]
    assert warned == ["spec.deploymentTargetId", "spec.jobFailureExpirationTime",
                      "metadata.displayName"]   # (namespace selects DeploymentDefaults)
    assert all("ignored" in w.message and w.line == 1 for w in result.warnings)
    typo = load({"export.yaml": VERVERICA_EXPORT.replace("kind: stateful", "kind: statefull")})
    [problem] = typo.problems
    assert "upgradeStrategy.kind" in problem.message and problem.line == 17


def test_documents_of_other_kinds_are_ignored_with_a_note():
    result = load({"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    assert result.problems == [] and result.deployments == {}
    assert "ConfigMap" in result.notes[0].message


def test_a_name_that_is_not_a_dns_label_is_refused():
    result = load({"d.yaml": DEPLOYMENT.format(name="Orders_1")})
    assert "metadata.name" in result.problems[0].message
    assert result.problems[0].line == 4


def test_latest_state_with_checkpoints_deleted_on_cancellation_is_refused():
    text = DEPLOYMENT.format(name="orders").replace(
        "  deploymentTargetName: local",
        "  deploymentTargetName: local\n  restoreStrategy: {kind: LATEST_STATE}").replace(
        "        pipeline.object-reuse: true",
        "        execution.checkpointing.externalized-checkpoint-retention: "
        "DELETE_ON_CANCELLATION")
    [problem] = load({"d.yaml": text}).problems
    assert "LATEST_STATE restores retained checkpoints" in problem.message
    assert "RETAIN_ON_CANCELLATION" in problem.message
