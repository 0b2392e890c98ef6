"""Policies on a real Flink cluster: a denied change is BLOCKED and its job left running; a policy
that does not compile holds every change."""

from __future__ import annotations

from agent.reconcile import sync


def test_a_change_a_repo_policy_denies_is_blocked_and_the_job_left_running(
        deployed, spec_repo, settings, rest):
    spec_repo.write("policies/max_parallelism.rego", """\
        package main

        import rego.v1

        deny contains msg if {
        	input.spec.template.spec.parallelism > 1
        	msg := sprintf("%s: parallelism above 1 needs a bigger cluster", [input.metadata.name])
        }
        """)
    deployed("guarded-by-policy")
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("guarded-by-policy", 1)
    deployed("guarded-by-policy", parallelism=2)
    spec_repo.push("parallelism 2")
    assert sync(settings).exit_code == 1
    assert rest.running() == [job] and rest.parallelism(job) == 1
    status = spec_repo.status_of("guarded-by-policy")
    assert status["sync"] == "BLOCKED" and status["state"] == "RUNNING"
    [problem] = status["errors"]
    assert problem["kind"] == "POLICY"
    assert problem["message"] == ("policies/max_parallelism.rego: guarded-by-policy: parallelism "
                                  "above 1 needs a bigger cluster")
    assert status["appliedSpec"]["spec"]["template"]["spec"]["parallelism"] == 1


def test_a_policy_that_does_not_compile_holds_every_change_and_says_where(
        deployed, spec_repo, settings, rest):
    spec_repo.write("policies/broken.rego",
                    "package main\nimport rego.v1\n\ndeny contains msg if {\n  x := \n}\n")
    deployed("unguarded")
    spec_repo.push()
    assert sync(settings).exit_code == 1
    assert rest.running() == []
    status = spec_repo.status_of("unguarded")
    assert status["sync"] == "BLOCKED"
    [problem] = status["errors"]
    assert problem["kind"] == "POLICY"
    assert problem["message"].startswith("policies/broken.rego:5: policy does not compile")
