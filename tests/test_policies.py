"""Rego policies (regopy, OPA's language, no server): the built-ins, a policy of the spec repo,
a policy that does not compile, and the sandbox a repository's policy runs in (no environment,
bounded in size, time and memory)."""

from __future__ import annotations

import pytest

from agent import rego_sandbox
from agent.errors import ConfigError
from agent.policy import (built_in_policies, compile_policies, evaluate,
                          policy_input)
from agent.diff import difference
from conftest import deployment, running
from hostile_inputs import POLICY_CASES


def verdict(plan: dict, restore: str = "LATEST_SAVEPOINT", labels: dict | None = None,
            annotations: dict | None = None, options: dict | None = None):
    spec = deployment(restore=restore, labels=labels, annotations=annotations,
                      target="prod",
                      options=options or {"execution.checkpointing.interval": "10s"})
    return evaluate(compile_policies(built_in_policies()),
                    policy_input(spec, "prod", "flink", plan, None))


def test_a_stateful_upgrade_that_restores_nothing_is_warned_about():
    result = verdict({"action": "STATEFUL_UPGRADE", "state": "DISCARDED"}, restore="NONE")
    assert not result.denied
    [warning] = result.warnings
    assert "stateful_restore_none.rego" in warning and "does not use it" in warning


def test_a_secret_in_clear_text_is_warned_about_and_a_reference_is_not():
    options = {"execution.checkpointing.interval": "10s", "db.PASSWORD": "hunter2",
               "s3.access.key": "${S3_KEY}", "sasl.jaas.config": "${file:/run/jaas}"}
    warnings = verdict({"action": None}, options=options).warnings
    assert len(warnings) == 1 and "plain_secrets.rego" in warnings[0]
    assert "flinkConfiguration db.PASSWORD holds a secret in clear text" in warnings[0]
    assert "hunter2" not in warnings[0]


def test_the_plain_secrets_policy_and_the_status_redaction_know_the_same_secret_names():
    """One vocabulary: what the built-in policy warns about is what the status masks."""
    import re
    from pathlib import Path
    from agent.model.references import SECRET_NAME
    policy = (Path(__file__).parents[1] / "policies/plain_secrets.rego").read_text()
    assert re.search(r"^secret_name := `(.*)`$", policy, re.M)[1] == SECRET_NAME


def test_the_example_policy_keeps_every_savepoint_of_prod_deployments():
    """policies/examples/no_disposal_in_prod.rego, as a spec repository would use it, on the
    plan of a disposal as the planner makes it."""
    from pathlib import Path
    from agent.model.status import Savepoint, SavepointOrigin
    from agent.plan import plan
    from agent.retention import Disposal, Upkeep
    from conftest import applied
    example = Path(__file__).parents[1] / "policies/examples/no_disposal_in_prod.rego"
    policies = compile_policies({"policies/no_disposal_in_prod.rego": example.read_text()})
    old = Savepoint(location="s3://sp/savepoint-1", origin=SavepointOrigin.PERIODIC,
                    created_at="2026-11-29T00:00:00Z")
    results = {}
    for env in ("prod", "dev"):
        spec = deployment(labels={"env": env})
        observation = running()
        diff = difference("orders", spec, spec.job_hash(), applied(spec), observation)
        disposal = plan(diff, spec, applied(spec), observation,
                        upkeep=Upkeep(disposals=(Disposal(old, "beyond maxCount 1"),)))
        assert disposal.action.value == "DISPOSE_SAVEPOINTS"
        results[env] = evaluate(policies, policy_input(spec, "prod", "flink",
                                                       disposal.document(), None))
    assert not results["dev"].denied
    [denial] = results["prod"].denials
    assert "savepoints of prod deployments are kept; not disposing s3://sp/savepoint-1" in denial


@pytest.mark.parametrize("author, message, denied", [
    ("alice@example.com", "orders: parallelism 4\n\nReviewed-by: bob", None),
    ("alice@example.com", "orders: parallelism 4", "needs a Reviewed-by: line"),
    ("deploy@bots.example.com", "Reviewed-by: bob", "may not change production"),
])
def test_the_example_commit_policy_wants_a_reviewed_production_change_by_a_person(
        author, message, denied):
    """policies/examples/prod_commit_review.rego on `input.commit` as the agent makes it."""
    from pathlib import Path
    example = Path(__file__).parents[1] / "policies/examples/prod_commit_review.rego"
    policies = compile_policies({"policies/prod_commit_review.rego": example.read_text()})
    commit = {"sha": "3f2a9c01d4" * 4, "author": {"name": "a", "email": author},
              "committer": {"name": "a", "email": author}, "signer": None,
              "message": message, "changedFiles": ["deployments/orders.yaml"]}
    for env, action in (("prod", "STATEFUL_UPGRADE"), ("prod", None), ("dev", "START")):
        result = evaluate(policies, policy_input(deployment(labels={"env": env}), "prod",
                                                 "flink", {"action": action}, None, None, commit))
        if denied and env == "prod" and action:
            [denial] = result.denials
            assert denied in denial
        else:
            assert not result.denied


def test_only_a_policy_that_names_the_commit_makes_verdicts_depend_on_it():
    """Verdicts are kept by their input: the commit in every input would end them all at every
    commit, so it is there only for policies that read it."""
    from pathlib import Path
    assert not compile_policies(built_in_policies()).reads_commit
    example = Path(__file__).parents[1] / "policies/examples/prod_commit_review.rego"
    assert compile_policies({"policies/review.rego": example.read_text()}).reads_commit


def test_latest_state_without_checkpointing_is_denied():
    result = verdict({"action": "START", "state": "EMPTY"}, restore="LATEST_STATE",
                     options={"pipeline.name": "x"})
    [denial] = result.denials
    assert "latest_state_needs_checkpoints.rego" in denial
    assert "execution.checkpointing.interval" in denial
    assert not verdict({"action": "START", "state": "EMPTY"}, restore="LATEST_STATE").denied


@pytest.mark.parametrize("labels, annotations, state, denied", [
    ({"env": "prod"}, {}, "DISCARDED", True),
    ({"env": "prod"}, {"flink-gitops.io/allow-state-loss": "true"}, "DISCARDED", False),
    ({"env": "prod"}, {}, "RESTORED_FROM_CHECKPOINT", False),
    ({"env": "dev"}, {}, "DISCARDED", False),
])
def test_discarding_the_state_of_a_prod_deployment_needs_an_opt_in(labels, annotations, state,
                                                                   denied):
    result = verdict({"action": "STATELESS_UPGRADE", "state": state}, labels=labels,
                     annotations=annotations)
    assert result.denied is denied
    if denied:
        assert "prod_state_loss.rego" in result.denials[0] and "allow-state-loss" in \
            result.denials[0]


@pytest.mark.parametrize("labels, annotations, check, denied", [
    ({"env": "prod"}, {}, "DROPS_STATE", True),
    ({"env": "prod"}, {}, "NOT_RESTORABLE", True),
    ({"env": "prod"}, {"flink-gitops.io/allow-state-loss": "true"}, "DROPS_STATE", False),
    ({"env": "prod"}, {}, "COMPATIBLE", False),
    ({"env": "prod"}, {}, "UNCHECKED", False),
    ({"env": "dev"}, {}, "DROPS_STATE", False),
])
def test_dropping_saved_operator_state_of_a_prod_deployment_needs_an_opt_in(
        labels, annotations, check, denied):
    summary = "1 operator's state would be dropped: counter (uid `counter`)"
    result = verdict({"action": "STATEFUL_UPGRADE", "state": "RESTORED_FROM_SAVEPOINT",
                      "stateCheck": {"verdict": check, "summary": summary}},
                     labels=labels, annotations=annotations)
    assert result.denied is denied
    if denied:
        assert "prod_state_drop.rego" in result.denials[0] and summary in result.denials[0]


def test_a_policy_that_does_not_compile_denies_every_change_naming_file_and_line():
    broken = "package main\nimport rego.v1\n\ndeny contains msg if {\n  x := \n}\n"
    policies = compile_policies({"policies/broken.rego": broken})
    [denial] = evaluate(policies, {"spec": {"state": "RUNNING"}}).denials
    assert denial.startswith("policies/broken.rego:5: policy does not compile")
    assert "every change is held" in denial


def test_a_policy_that_fails_when_evaluated_denies_instead_of_raising():
    conflicting = ('package main\nimport rego.v1\n\nx := 1 if input.a\nx := 2 if input.a\n'
                   'deny contains "never" if x == 3\n')
    [denial] = evaluate(compile_policies({"policies/conflict.rego": conflicting}),
                        {"a": True}).denials
    assert denial.startswith("policies/conflict.rego: evaluating deny failed")
    assert "held until the policy is fixed" in denial


def test_rego_v0_rules_are_understood_too():
    old = 'package main\ndeny[msg] { input.spec.state == "RUNNING"; msg := "no" }\n'
    policies = compile_policies({"policies/old.rego": old})
    assert evaluate(policies, {"spec": {"state": "RUNNING"}}).denials == (
        "policies/old.rego: no",)


def test_a_custom_package_is_queried():
    text = 'package flink\nimport rego.v1\nwarn contains "w" if { true }\n'
    assert evaluate(compile_policies({"p.rego": text}, package="flink"), {}).warnings == (
        "p.rego: w",)


CANARY = "canary-5ecret-in-the-agents-environment"


def test_a_policy_sees_nothing_of_the_agents_environment(monkeypatch):
    monkeypatch.setenv("FLINK_GITOPS_CANARY_TOKEN", CANARY)
    spy = ('package main\nimport rego.v1\n\n'
           'warn contains sprintf("%v", [opa.runtime()]) if true\n')
    verdict = evaluate(compile_policies({"policies/spy.rego": spy}), {"spec": {}})
    [warning] = verdict.warnings
    assert CANARY not in warning and "FLINK_GITOPS" not in warning


def test_a_slow_policy_is_a_denial_naming_it_and_the_limit():
    slow = ('package main\nimport rego.v1\n\nwarn contains "x" if {\n  count({x | some i in '
            'numbers.range(1, 1000); some j in numbers.range(1, 1000); x := (i * j) % 7}) > 0\n}\n')
    policies = compile_policies({"policies/slow.rego": slow, **built_in_policies()})
    [denial] = evaluate(policies, {"spec": {}}).denials
    assert denial.startswith("policies/slow.rego: evaluating took over 2s (the limit)")
    # the file now denies every change at once; the other policies still answer
    second = evaluate(policies, {"spec": {"other": 1}})
    assert second.denials == (denial,)


def test_a_policy_that_eats_memory_is_killed_and_denies(monkeypatch):
    # (the time limit out of the way: on a loaded machine 2 s could pass before 512 MiB)
    monkeypatch.setattr(rego_sandbox, "EVALUATE_TIMEOUT_S", 60.0)
    hungry = ('package main\nimport rego.v1\n\n'
              'warn contains "x" if count(numbers.range(1, 300000000)) > 0\n')
    [denial] = evaluate(compile_policies({"policies/hungry.rego": hungry}), {}).denials
    assert "policies/hungry.rego: evaluating used over 512 MiB of memory (the limit)" in denial


def test_a_policy_file_over_the_size_limit_is_not_compiled():
    huge = "package main\nimport rego.v1\n\n" + "# padding\n" * 30_000
    [denial] = evaluate(compile_policies({"policies/huge.rego": huge}), {}).denials
    assert "over the limit of 262,144" in denial


def test_a_policy_package_no_file_declares_is_a_configuration_error():
    with pytest.raises(ConfigError, match="--policy-package 'mian'"):
        compile_policies(built_in_policies(), package="mian")


def test_a_policy_of_another_package_is_a_warning_and_not_evaluated():
    other = 'package other\nimport rego.v1\n\ndeny contains "no" if true\n'
    policies = compile_policies({**built_in_policies(), "policies/other.rego": other})
    assert policies.warnings == ("policies/other.rego: package other is not --policy-package "
                                 "main: its rules are not evaluated",)
    assert not evaluate(policies, {"spec": {}}).denied


@pytest.mark.parametrize("case", POLICY_CASES, ids=str)
def test_a_hostile_policy_ends_as_a_denial_naming_it_or_as_nothing(case, monkeypatch):
    monkeypatch.setenv("FLINK_GITOPS_CANARY_TOKEN", CANARY)
    path = f"policies/{case.id}.rego"
    text = case.text.decode("utf-8", errors="replace") if isinstance(case.text, bytes) \
        else case.text
    verdict = evaluate(compile_policies({path: text, **built_in_policies()}),
                       {"spec": {"state": "RUNNING"}, "plan": {"action": "START"}})
    mine = [d for d in verdict.denials if d.startswith(path)]
    if case.denial is None:
        assert mine == []
    else:
        assert mine and any(case.denial in d for d in mine), verdict.denials
    assert all(len(message) < 1200 for message in verdict.denials + verdict.warnings)
    assert CANARY not in " ".join(verdict.denials + verdict.warnings)
