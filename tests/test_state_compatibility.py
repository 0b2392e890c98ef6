"""State compatibility before a job runs: the new job's operators from its job graph (built in a
JVM here, nothing submitted) against the operator states of a real savepoint, each verdict
checked against what Flink does when the job is started from it; the verdict in `plan` (and its
prod policy) and in `sync`, which does not start an upgrade whose state is not restorable."""

from __future__ import annotations

import re
import uuid

from pathlib import Path

import pytest

from agent.errors import FlinkRequestError, StateUnchecked
from agent.flink.artifacts import JobProgram
from agent.flink.compatibility import check_state
from agent.flink.rest import FlinkClient
from agent.model.compatibility import Fate, Operator, SavedState, StateVerdict, compatibility
from agent.model.observation import Observation
from agent.model.spec import Deployment
from agent.reconcile import review, sync
from agent.report.review import render_markdown
from agent.state_check import state_check, state_checks
from conftest import applied, deployment, running
from test_plan import decide
from test_sql_real_flink import sql_deployment

COUNTER = "com.example.Counter"
ARGS = ["--rate", "20", "--keys", "4"]
ARGS_TEXT = " ".join(ARGS)              # (the counter deployment's mainArgs)


def operator(uid: str, max_parallelism: int = -1) -> Operator:
    return Operator(f"id-{uid}", None, uid, uid.replace("-", " "), max_parallelism)


def saved(uid: str, has_state: bool = True, max_parallelism: int = 128) -> SavedState:
    return SavedState(f"id-{uid}", uid, uid.replace("-", " "), max_parallelism, has_state)


def test_each_saved_operator_is_restored_dropped_or_not_restorable_and_new_ones_start_empty():
    states = [saved("events"), saved("count-per-key"), saved("sink", has_state=False)]
    same = compatibility([operator("events"), operator("count-per-key"), operator("sink")],
                         states, "sp", False)
    assert same.restorable and same.summary == "compatible"
    assert [v.fate for v in same.operators] == [Fate.RESTORED, Fate.RESTORED]

    renamed = compatibility([operator("events"), operator("counts"), operator("sink")],
                            states, "sp", False)
    assert [(v.fate, v.operator) for v in renamed.operators] == [
        (Fate.RESTORED, "events (uid `events`)"),
        (Fate.DROPPED, "count per key (uid `count-per-key`)"), (Fate.NEW, "counts (uid `counts`)")]
    assert not renamed.restorable and renamed.summary == (
        "not restorable (1 operator's state would be dropped: count per key (uid "
        "`count-per-key`); allowNonRestoredState: true would drop it)")
    allowed = compatibility([operator("events"), operator("counts")], states, "sp", True)
    assert allowed.restorable and allowed.summary == (
        "1 operator's state would be dropped: count per key (uid `count-per-key`)")

    rescaled = compatibility([operator("events", 64), operator("count-per-key")], states, "sp",
                             True)
    assert not rescaled.restorable and rescaled.summary == (
        "not restorable (events (uid `events`): max parallelism 64, the state's 128)")


def allowing(spec: Deployment, allow: bool) -> Deployment:
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["restoreStrategy"]["allowNonRestoredState"] = allow
    return Deployment.model_validate(data)


def test_which_plans_are_checked_and_a_verdict_remembered_per_state_and_allowance(monkeypatch):
    asked = []

    def check(program, parallelism, options, location, allow):   # (its I/O: a JVM)
        asked.append((location, allow))
        return compatibility([operator("events")], [saved("events"), saved("count-per-key")],
                             location, allow)
    monkeypatch.setattr("agent.state_check.check_state", check)
    memo = state_checks()

    def checked(desired, previous=None, observation=Observation(True)):
        _, decided = decide(desired, previous, observation)
        return state_check(decided, desired, desired.job_hash(), previous and previous.status,
                           None, lambda: JobProgram(Path("a.jar"), None, []), False, memo)

    first = deployment(initial="file:/sp/1")   # a first start from a savepoint: checked
    assert checked(first).verdict == StateVerdict.NOT_RESTORABLE
    assert checked(allowing(first, True)).verdict == StateVerdict.DROPS_STATE
    assert checked(first).verdict == StateVerdict.NOT_RESTORABLE
    assert asked == [("file:/sp/1", False), ("file:/sp/1", True)]   # the third remembered

    assert checked(deployment()) is None                 # a first start from empty state
    suspended = applied(deployment(state="SUSPENDED"), savepoint="file:/sp/2")
    suspended.status.state = "SUSPENDED"
    same = checked(deployment(), suspended, running(flink_status="FINISHED"))
    assert same.same_job and same.summary.startswith("compatible (the state is of a job of "
                                                      "this same spec")
    upgrade = checked(deployment(2), applied(deployment()), running())   # no client: unknown
    assert upgrade.verdict == StateVerdict.UNCHECKED and "did not answer" in upgrade.summary
    assert len(asked) == 2


@pytest.fixture(scope="module")
def savepoint(flink, counter_jar):
    """A savepoint of a counter job that ran (and was cancelled then): the tests' shared state."""
    client, job = FlinkClient(flink.url), uuid.uuid4().hex
    client.run_jar(client.upload_jar(counter_jar), job_id=job, entry_class=COUNTER, args=ARGS,
                   parallelism=1, savepoint_path=None, allow_non_restored_state=False,
                   configuration={})
    client.await_running(job, 60)
    location = client.await_savepoint(job, client.trigger_savepoint(
        job, target_directory=None)).location
    client.cancel(job)
    client.await_end(job)
    return location


def starts(flink, program: JobProgram, location: str, allow: bool,
           options: dict[str, str] | None = None, parallelism: int = 1) -> bool:
    """Whether Flink starts `program` from `location` (the job is cancelled then)."""
    client = FlinkClient(flink.url)
    job = uuid.uuid4().hex
    try:
        client.run_jar(client.upload_jar(program.jar), job_id=job,
                       entry_class=program.entry_class, args=program.args,
                       parallelism=parallelism, savepoint_path=location,
                       allow_non_restored_state=allow, configuration=options or {})
    except FlinkRequestError as refused:
        assert "Cannot map checkpoint/savepoint state" in str(refused) \
            or "max parallelism" in str(refused).lower(), refused
        return False
    state = client.await_running(job, 60)
    client.cancel(job)
    client.await_end(job)
    return state.state.value == "RUNNING"


@pytest.mark.parametrize("args, options, allow, summary", [
    (ARGS[:2] + ["--keys", "8"], {}, False, "compatible"),
    (ARGS + ["--count-uid", "counts"], {}, False,
     "not restorable (1 operator's state would be dropped: count per key (uid "
     "`count-per-key`); allowNonRestoredState: true would drop it)"),
    (ARGS + ["--count-uid", "counts"], {}, True,
     "1 operator's state would be dropped: count per key (uid `count-per-key`)"),
    (ARGS, {"pipeline.max-parallelism": "64"}, False,
     "not restorable (Source: events (uid `events`): max parallelism 64, the state's 128)"),
])
def test_the_verdict_agrees_with_flink_starting_the_job_from_the_savepoint(
        savepoint, flink, counter_jar, tmp_path, args, options, allow, summary):
    program = JobProgram(counter_jar, COUNTER, args)
    verdict = check_state(program, 1, options, savepoint, allow)
    assert verdict.summary == summary
    assert starts(flink, program, savepoint, allow, options) == verdict.restorable


CLICKS = """\
CREATE TEMPORARY TABLE clicks (page INT, user_id INT) WITH ('connector' = 'datagen',
  'rows-per-second' = '5', 'fields.page.min' = '1', 'fields.page.max' = '8',
  'fields.user_id.min' = '1', 'fields.user_id.max' = '8');
CREATE TEMPORARY TABLE counts (page INT, n BIGINT) WITH ('connector' = 'blackhole');
"""
COUNTS = "INSERT INTO counts SELECT page, COUNT(*) FROM clicks GROUP BY page;"
COUNTS_DISTINCT = "INSERT INTO counts SELECT page, COUNT(DISTINCT user_id) FROM clicks GROUP BY page;"


def sql_program(cache, query: str) -> JobProgram:
    from agent.flink.runner import RUNNER_CLASS, runner_args, runner_jar
    return JobProgram(runner_jar(cache), RUNNER_CLASS, runner_args("sql", CLICKS + query))


@pytest.mark.parametrize("query, changed, parallelism, verdict", [
    (COUNTS, COUNTS, 2, "compatible"),
    (COUNTS, COUNTS_DISTINCT, 1, r"not restorable \(1 operator's state would be dropped: "
                                 r"GroupAggregate\[\d+\]; allowNonRestoredState: true would "
                                 r"drop it\)"),    # ([n]: the planner's count)
])
def test_a_sql_verdict_agrees_with_flink_starting_the_changed_query(
        flink, tmp_path, query, changed, parallelism, verdict):
    client, cache = FlinkClient(flink.url), tmp_path / "cache"
    running, job = sql_program(cache, query), uuid.uuid4().hex
    client.run_jar(client.upload_jar(running.jar), job_id=job, entry_class=running.entry_class,
                   args=running.args, parallelism=1, savepoint_path=None,
                   allow_non_restored_state=False, configuration={})
    client.await_running(job, 60)
    location = client.await_savepoint(job, client.trigger_savepoint(
        job, target_directory=None)).location
    client.cancel(job)
    new = sql_program(cache, changed)
    found = check_state(new, parallelism, {}, location, False)
    assert re.fullmatch(verdict, found.summary), found.summary
    assert starts(flink, new, location, False, parallelism=parallelism) == found.restorable


def test_what_cannot_be_read_here_is_unchecked_with_its_reason(savepoint, counter_jar, tmp_path):
    counter = JobProgram(counter_jar, COUNTER, ARGS)
    with pytest.raises(StateUnchecked, match="is not there"):
        check_state(counter, 1, {}, str(tmp_path / "no-such-savepoint"), False)
    with pytest.raises(StateUnchecked, match="cannot be read from the agent's machine"):
        check_state(counter, 1, {}, "nosuchscheme://x/sp", False)
    with pytest.raises(StateUnchecked, match="graph could not be built here: .*"
                                             "ClassNotFoundException: com.example.Nothing"):
        check_state(JobProgram(counter_jar, "com.example.Nothing", []), 1, {}, savepoint, False)


# --- the verdict in `plan` and `sync` -----------------------------------------------------------

def planned(settings, name: str):
    """The reviewed plan of deployment `name`, and the whole review's exit code."""
    reviews = review(settings)
    return next(r for r in reviews.reviews if r.name == name), reviews


def test_a_dropped_uid_is_named_in_the_plan_denied_in_prod_and_refused_by_sync(
        checkpointed, deployed, spec_repo, settings, rest):
    old = checkpointed("uid-change", labels="{env: prod}")
    renamed = ARGS_TEXT + " --count-uid counts"
    deployed("uid-change", args=renamed, labels="{env: prod}")
    spec_repo.push("the counting operator gets another uid")
    reviewed, reviews = planned(settings, "uid-change")
    check = reviewed.plan.state_check
    assert check.verdict == StateVerdict.NOT_RESTORABLE and check.headline == "not restorable"
    assert check.summary.startswith("not restorable (1 operator's state would be dropped: "
                                    "count per key (uid `count-per-key`)")
    assert reviews.exit_code == 1 and "prod_state_drop.rego" in reviewed.verdict.denials[0]
    markdown = render_markdown(reviews)
    assert "| uid-change | BLOCKED | untouched; state: not restorable | ⛔ 1 denied |" in markdown
    assert "- **dropped**: count per key (uid `count-per-key`)" in markdown
    assert "- new (starts empty): count per key (uid `counts`)" in markdown

    deployed("uid-change", args=renamed)   # not prod: no policy, the check alone
    spec_repo.push("not prod")
    result = sync(settings)
    assert result.exit_code == 1
    status = spec_repo.status_of("uid-change")
    assert status["state"] == "FAILED" and status["lastAction"]["result"] == "FAILED"
    assert "nothing was changed: the new job cannot restore its state: not restorable (1 " \
        "operator's state would be dropped: count per key" in status["lastAction"]["message"]
    assert rest.running() == [old] and status["job"]["id"] == old   # never stopped
    assert "lastSavepoint" not in status

    deployed("uid-change", args=renamed, restore="LATEST_SAVEPOINT, allowNonRestoredState: true")
    spec_repo.push("drop the old count's state on purpose")
    reviewed, _ = planned(settings, "uid-change")
    assert reviewed.plan.state_check.verdict == StateVerdict.DROPS_STATE
    assert reviewed.plan.state_check.headline == "1 operator's state would be dropped"
    assert sync(settings).exit_code == 0   # and Flink agrees: the new job restores the rest
    status = spec_repo.status_of("uid-change")
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE" and status["state"] == "RUNNING"
    assert rest.restored_from(status["job"]["id"]) == status["lastSavepoint"]["location"]


def test_a_count_distinct_added_to_a_sql_query_is_caught_in_the_plan_and_refused_by_sync(
        spec_repo, settings, flink, rest):
    spec_repo.write_target("test", flink.url)
    spec_repo.write("deployments/users.yaml", sql_deployment("users", CLICKS + COUNTS))
    spec_repo.push("clicks per page")
    assert sync(settings).exit_code == 0
    job = rest.job("users", 1)
    rest.wait_checkpoint(job)
    spec_repo.write("deployments/users.yaml",
                    sql_deployment("users", CLICKS + COUNTS_DISTINCT))
    spec_repo.push("distinct users per page")
    reviewed, reviews = planned(settings, "users")
    assert reviewed.plan.refused and "GroupAggregate" in reviewed.plan.state_check.summary
    assert reviews.exit_code == 1   # `plan` fails the pull request
    assert sync(settings).exit_code == 1
    assert rest.running() == [job]
    assert "cannot restore its state" in spec_repo.status_of("users")["lastAction"]["message"]
