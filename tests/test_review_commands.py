"""`plan`, `validate` and `schema` as a reviewer, a pre-commit hook and an editor run them."""

from __future__ import annotations

import json
import shutil

from agent.reconcile import sync
from conftest import ROOT
from test_commands import run


def plan_json(settings, *args: str):
    result = run("plan", "--repo", settings.repo, "--workdir", str(settings.workdir),
                 "--format", "json", *args)
    return result.returncode, json.loads(result.stdout) if result.stdout else None


def test_plan_shows_what_sync_then_does_and_changes_nothing(deployed, spec_repo, settings,
                                                             rest):
    deployed("reviewed-up")
    deployed("reviewed-off")
    spec_repo.push()
    sync(settings)
    up, off = rest.job("reviewed-up", 1), rest.job("reviewed-off", 1)
    rest.wait_checkpoint(up)
    deployed("reviewed-up", parallelism=2)
    deployed("reviewed-off", state="SUSPENDED")
    spec_repo.push("a change under review")
    commits, jobs = spec_repo.status_commits(), rest.jobs()

    code, planned = plan_json(settings, "--base", "main~1")
    assert code == 2
    assert spec_repo.status_commits() == commits and rest.jobs() == jobs  # nothing changed
    actions = {d["name"]: d["action"] for d in planned["deployments"]}
    assert actions == {"reviewed-up": "STATEFUL_UPGRADE", "reviewed-off": "SUSPEND"}
    up_plan = next(d for d in planned["deployments"] if d["name"] == "reviewed-up")
    assert up_plan["changes"] == [{"path": "spec.template.spec.parallelism", "old": 1, "new": 2}]
    assert up_plan["state"] == "RESTORED_FROM_SAVEPOINT"
    assert [s["kind"] for s in up_plan["steps"]] == ["STOP_WITH_SAVEPOINT", "START_JOB"]
    assert up_plan["steps"][0]["jobId"] == up
    assert up_plan["stateCheck"]["verdict"] == "COMPATIBLE"   # checked against its checkpoint
    assert [o["fate"] for o in up_plan["stateCheck"]["operators"]] == ["RESTORED", "RESTORED"]

    assert sync(settings).exit_code == 0
    done = {name: spec_repo.status_of(name)["lastAction"]["kind"] for name in actions}
    assert done == actions
    assert spec_repo.status_of("reviewed-up")["job"]["id"] == up_plan["steps"][1]["jobId"]
    assert rest.jobs()[off] == "FINISHED"
    assert plan_json(settings)[0] == 0  # nothing left to do


def test_plan_without_the_cluster_plans_from_the_status_branch_and_says_so(
        deployed, spec_repo, settings):
    deployed("remote")
    spec_repo.push()
    sync(settings)
    spec_repo.write_target("test", "http://127.0.0.1:9")
    deployed("remote", parallelism=2)
    spec_repo.push("cluster moved and a change")
    result = run("plan", "--repo", settings.repo, "--workdir", str(settings.workdir))
    assert result.returncode == 2
    assert "| remote | STATEFUL_UPGRADE | restored from a savepoint; state: unchecked | ✅ |" \
        in result.stdout
    assert "Cluster not reachable for remote: planned from the status branch" in result.stdout
    assert "State check: unchecked (the cluster did not answer: job " in result.stdout


def test_validate_passes_the_examples_and_names_file_and_line_of_each_problem(tmp_path,
                                                                             counter_jar):
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "spec-examples", checkout)
    unbuilt = run("validate", str(checkout))   # the examples keep the jar's source, not the jar
    assert unbuilt.returncode == 1 and unbuilt.stderr == (
        "deployments/counter.yaml:24: jarUri jobs/counter.jar: no file jobs/counter.jar in the "
        "spec repository\n")
    shutil.copy(counter_jar, checkout / "jobs" / "counter.jar")   # as the demo builds it
    assert run("validate", str(checkout)).returncode == 0
    spec = checkout / "deployments" / "counter.yaml"
    spec.write_text(spec.read_text().replace("  parallelism: 1", "  paralelism: 1")
                    .replace("kind: LATEST_SAVEPOINT", "kind: LATEST_STATE"))
    (checkout / "deployments" / "other.yaml").write_text(
        "apiVersion: v1\nkind: Deployment\nmetadata: {name: other}\nspec:\n"
        "  deploymentTargetName: nowhere\n  restoreStrategy: {kind: LATEST_STATE}\n"
        "  template: {spec: {artifact: {jarUri: a.jar}}}\n")
    result = run("validate", str(checkout))
    assert result.returncode == 1
    assert "deployments/counter.yaml:27: Deployment spec.template.spec.paralelism: unknown " \
           "field" in result.stderr
    assert "deployments/other.yaml:5: deploymentTargetName 'nowhere'" in result.stderr
    assert "deployments/other.yaml:1: (built-in) latest_state_needs_checkpoints.rego" \
        in result.stderr


def test_schema_describes_every_spec_kind_for_editors():
    schema = json.loads(run("schema").stdout)
    assert len(schema["oneOf"]) == 5   # Deployment, DeploymentTarget, SessionCluster, defaults,
    assert schema["$defs"]["SyncWindowSpec"]["required"] == ["kind", "schedule", "duration"]
    deployment = schema["$defs"]["Deployment"]
    assert deployment["additionalProperties"] is False
    assert set(deployment["properties"]) >= {"apiVersion", "kind", "metadata", "spec"}
    assert "upgradeStrategy" in schema["$defs"]["DeploymentSpec"]["properties"]


def test_status_prints_the_dashboard_table_filtered_by_label(deployed, spec_repo, settings):
    deployed("shown", labels="{team: blue}")
    deployed("hidden", labels="{team: red}", state="SUSPENDED")
    spec_repo.push()
    sync(settings)
    everything = run("status", "--repo", settings.repo, "--workdir", str(settings.workdir))
    assert everything.returncode == 0
    assert "shown" in everything.stdout and "hidden" in everything.stdout
    blue = run("status", "--repo", settings.repo, "--workdir", str(settings.workdir),
               "--label", "team=blue")
    assert "shown" in blue.stdout and "RUNNING" in blue.stdout and "hidden" not in blue.stdout


def test_plan_and_validate_agree_on_every_hostile_file_of_a_new_deployment(spec_repo, settings):
    """A pull request adding a broken file: what `validate` refuses, `plan` shows and fails on,
    so the check never passes a change that `sync` will refuse. (A new file without a `kind`, or
    a list, is no spec to either: only a file that held a deployment holds it. A secret reference
    that cannot be expanded is shown as a warning: the reviewing machine need not hold secrets.)"""
    from agent.reconcile import review
    from agent.validate import validate
    from conftest import counter_deployment, free_port
    from hostile_inputs import CASES

    spec_repo.write_target("test", f"http://127.0.0.1:{free_port()}")
    for case in CASES:
        content = case.make(counter_deployment("newcomer"), "newcomer")
        file = spec_repo.checkout / "deployments/newcomer.yaml"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content if isinstance(content, bytes) else content.encode())
        refused = not validate(spec_repo.checkout).valid
        assert refused is (case.id not in ("no-kind", "kind-a-list", "a-list")), case.id
        spec_repo.push(case.id)
        reviewed = review(settings)
        assert (reviewed.exit_code == 1) is refused, case.id
        shown = list(reviewed.problems) + [p for r in reviewed.reviews
                                           for p in r.problems + r.warnings]
        assert not refused or any(case.expect in p for p in shown), (case.id, shown)
