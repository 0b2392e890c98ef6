"""Whatever a spec file contains, loading ends in problems with file and line, never an
exception; and a running deployment's file that cannot be read holds the deployment, never
deletes it (the pure half: the same corpus runs against real Flink in test_unreadable_specs)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.artifact_check import add_artifact_check
from agent.deletion import deletions
from agent.load import load, parse_file
from agent.model.status import DeploymentStatus
from agent.model.observation import Observation, ObservedJob
from agent.secret_check import add_secret_check
from conftest import counter_deployment
from hostile_inputs import CASES

FILE = "deployments/orders.yaml"
TARGET = "apiVersion: v1\nkind: DeploymentTarget\nmetadata: {name: test}\nspec: {local: {}}\n"


def applied_from(spec_file: str, name: str = "orders") -> dict[str, DeploymentStatus]:
    """The status of a deployment running from `spec_file`."""
    return {name: DeploymentStatus.model_validate({
        "metadata": {"name": name},
        "status": {"state": "RUNNING", "sync": "SYNCED", "specFile": spec_file}})}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_hostile_spec_file_is_a_problem_that_keeps_its_deployment(case):
    content = case.make(counter_deployment("orders"), "orders")
    loaded = load({FILE: content, "targets/test.yaml": TARGET})
    add_artifact_check(loaded, lambda path: path == "jobs/counter.jar")   # the repo's jar
    add_secret_check(loaded, lambda path: None)
    gone = deletions(loaded, applied_from(FILE))
    assert gone.deleted == ()
    problems = loaded.problems_of("Deployment", "orders") + list(gone.held.get("orders", ()))
    assert problems and all(p.file == FILE and p.line >= 1 for p in problems)
    assert any(case.expect in p.message for p in problems), [str(p) for p in problems]
    assert ("orders" in gone.held) is case.held


def test_a_file_that_parses_without_the_deployment_deletes_it():
    loaded = load({FILE: "# nothing here any more\n", "targets/test.yaml": TARGET})
    assert deletions(loaded, applied_from(FILE)).deleted == ("orders",)


def test_a_gone_file_deletes_unless_an_unreadable_file_names_the_deployment():
    assert deletions(load({}), applied_from(FILE)).deleted == ("orders",)
    moved = counter_deployment("orders") + "  oops: [\n"
    gone = deletions(load({"deployments/moved.yaml": moved}), applied_from(FILE))
    assert gone.deleted == () and "may hold this deployment" in gone.held["orders"][0].message
    other = counter_deployment("payments") + "  oops: [\n"
    assert deletions(load({"deployments/p.yaml": other}), applied_from(FILE)).deleted == (
        "orders",)


def test_more_deletions_than_the_limit_are_guarded():
    previous = {}
    for index in range(12):
        previous |= applied_from(f"d/{index}.yaml", f"d{index}")
    all_gone = deletions(load({}), previous)
    assert all_gone.limit == 1 and all_gone.guarded      # 10 % of 12 deployments, at least 1
    assert "12 deletions held; the limit is 1" in all_gone.guard_message()
    assert not deletions(load({}), previous, max_deletions=12).guarded
    one_gone = load({f"d/{i}.yaml": counter_deployment(f"d{i}") for i in range(1, 12)})
    assert not deletions(one_gone, previous).guarded


def test_a_yaml_directive_before_the_document_is_accepted():
    result = load({FILE: "%YAML 1.2\n---\n" + counter_deployment("orders")})
    assert result.problems == [] and list(result.deployments) == ["orders"]


def test_timestamps_stay_the_text_they_were_written_as():
    text = counter_deployment("orders").replace(
        "  labels:", "  createdAt: 2024-01-01T00:00:00Z\n  labels:")
    [located] = load({FILE: text}).deployments.values()
    assert located.spec.metadata.created_at == "2024-01-01T00:00:00Z"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_load_without_an_exception(data):
    parse_file(FILE, data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 900), st.integers(0, 40), st.text(max_size=12))
def test_any_edit_of_a_valid_spec_loads_without_an_exception(at, cut, insert):
    text = counter_deployment("orders")
    parsed = parse_file(FILE, text[:at] + insert + text[at + cut:])
    for problem in parsed.problems:
        assert problem.line >= 1 and problem.message


def test_a_deployment_on_an_invalid_target_is_told_the_targets_own_problem():
    from agent.load import target_problems
    bad_target = TARGET.replace("spec: {local: {}}", "spec: {flink: {url: 'ftp://flink:8081'}}")
    loaded = load({FILE: counter_deployment("orders"), "targets/test.yaml": bad_target})
    [target_problem] = loaded.unattributed()
    assert "url must be the http:// or https:// address" in target_problem.message
    [problem] = target_problems(loaded.deployments["orders"], loaded)
    assert "DeploymentTarget 'test' is invalid (targets/test.yaml:4:" in problem.message


def _running_from(spec_text: str) -> tuple[dict[str, DeploymentStatus], Observation]:
    """The status and the cluster of deployment `orders` running the spec `spec_text`."""
    from agent.job_ids import job_id
    original = load({FILE: spec_text}).deployments["orders"].spec
    applied = original.job_hash("blob")
    job = job_id("orders", 1, applied)
    previous = {"orders": DeploymentStatus.model_validate({
        "metadata": {"name": "orders"},
        "status": {"state": "RUNNING", "sync": "SYNCED", "specFile": FILE, "target": "test",
                   "desiredState": "RUNNING", "appliedSpecHash": applied,
                   "job": {"id": job, "generation": 1, "state": "STARTED",
                           "flinkStatus": "RUNNING", "parallelism": 1,
                           "startedAt": "2026-01-01T00:00:00Z"}}})}
    return previous, Observation(True, (ObservedJob(job, 1, "RUNNING"),))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 700), st.integers(0, 30), st.text(max_size=8)),
                min_size=1, max_size=4))
def test_the_planner_stops_or_deletes_only_on_what_a_file_validly_says(edits):
    from agent.diff import difference
    from agent.model.status import ActionKind
    from agent.plan import plan
    from agent.reconcile import _wanted

    text = original = counter_deployment("orders")
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut:]
    previous, observation = _running_from(original)
    loaded = load({FILE: text, "targets/test.yaml": TARGET})
    add_artifact_check(loaded, lambda path: path == "jobs/counter.jar")
    gone = deletions(loaded, previous)
    desired, problems, _ = _wanted("orders", loaded, tuple(loaded.problems_of("Deployment",
                                                                         "orders")),
                                   previous["orders"], gone.held.get("orders", ()))
    if problems:
        return   # held: the planner is not asked (the running job is left as it is)
    digest = desired.job_hash("blob") if desired else None
    decided = plan(difference("orders", desired, digest, previous["orders"], observation),
                   desired, previous["orders"], observation)
    if decided.action == ActionKind.DELETE:   # the file was read, and no longer holds it
        assert desired is None and "orders" in gone.deleted
        assert FILE not in loaded.unreadable()
    stopping = {ActionKind.SUSPEND: "SUSPENDED", ActionKind.CANCEL: "CANCELLED"}
    if decided.action in stopping:            # a valid spec asks for it
        assert desired is not None and desired.spec.state.value == stopping[decided.action]


def test_more_spec_files_than_the_limit_are_refused_whole(monkeypatch):
    from agent import load as loading
    from agent.errors import SpecLimitError
    monkeypatch.setattr(loading, "MAX_FILES", 3)
    with pytest.raises(SpecLimitError, match="holds 4 YAML files, over the limit of 3"):
        loading.load_blobs({f"d/{i}.yaml": str(i) for i in range(4)}, lambda blobs: {})
