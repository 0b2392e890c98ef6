"""Whatever Flink — or something in its place — answers, no job is touched on its word and no
cycle crashes: an answer that is not Flink's leaves the cluster unobserved for the cycle (the
deployment reported, nothing done), an odd entry among real ones is skipped (real Flink behind a
proxy of the tests' own that rewrites its answers; the corpus is tests/hostile_inputs.py)."""

from __future__ import annotations

from agent.reconcile import sync
from hostile_inputs import ANSWER_CASES


def test_no_answer_of_flinks_makes_the_agent_act_or_crash(deployed, spec_repo, settings, rest,
                                                          flink_proxy):
    deployed("answered")
    spec_repo.write_target("test", flink_proxy.url)
    spec_repo.push()
    assert sync(settings).exit_code == 0
    job = rest.job("answered", 1)
    rest.wait_state(job, "RUNNING")
    for case in ANSWER_CASES:
        flink_proxy.answers["/jobs/overview"] = case.answer
        result = sync(settings)
        assert result.outcomes == {}, case.id          # nothing done on that answer
        assert rest.running() == [job], case.id
        errors = spec_repo.status_of("answered")["errors"]
        if case.observed:
            assert result.exit_code == 0 and errors == [], (case.id, errors)
        else:
            assert result.exit_code == 1, case.id
            assert errors and ("target test" in errors[0]["message"] or "a state this agent "
                               "does not know" in errors[0]["message"]), (case.id, errors)
    flink_proxy.answers.clear()
    assert sync(settings).exit_code == 0
    assert rest.running() == [job]
