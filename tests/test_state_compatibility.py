"""State compatibility before a job runs (issue 19, first part): the new job's operators from
its job graph (built in a JVM here, nothing submitted) against the operator states of a real
savepoint, each verdict checked against what Flink does when the job is started from it."""

from __future__ import annotations

import re
import uuid

import pytest

from agent.errors import FlinkRequestError, StateUnchecked
from agent.flink.artifacts import JobProgram
from agent.flink.compatibility import check_state, saved_states
from agent.flink.rest import FlinkClient
from agent.model.compatibility import Fate, Operator, SavedState, compatibility

COUNTER = "com.example.Counter"
ARGS = ["--rate", "20", "--keys", "4"]


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


@pytest.fixture
def savepoint(checkpointed, flink):
    """A savepoint of a running counter job (its job keeps running)."""
    client = FlinkClient(flink.url)
    job = checkpointed(f"compat-{uuid.uuid4().hex[:6]}")
    trigger = client.trigger_savepoint(job, target_directory=None)
    return client.await_savepoint(job, trigger).location


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
    verdict = check_state(program, 1, options, savepoint, allow, tmp_path / "cache")
    assert verdict.summary == summary
    assert starts(flink, program, savepoint, allow, options) == verdict.restorable


AGGREGATION = """\
    CREATE TABLE clicks (page STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '5',
      'fields.page.length' = '2');
    CREATE TABLE counts (page STRING, n BIGINT) WITH ('connector' = 'blackhole');
    INSERT INTO counts SELECT page, COUNT(*) FROM clicks GROUP BY page;
    """


def test_a_sql_job_keeps_its_state_across_a_parallelism_change_but_not_a_new_filter(
        flink, tmp_path):
    from agent.flink.runner import RUNNER_CLASS, runner_args, runner_jar
    client, cache = FlinkClient(flink.url), tmp_path / "cache"

    def program(script: str) -> JobProgram:
        return JobProgram(runner_jar(cache), RUNNER_CLASS, runner_args("aggregation", script))
    running = program(AGGREGATION)
    job = uuid.uuid4().hex
    client.run_jar(client.upload_jar(running.jar), job_id=job, entry_class=RUNNER_CLASS,
                   args=running.args, parallelism=1, savepoint_path=None,
                   allow_non_restored_state=False,
                   configuration={"execution.checkpointing.interval": "1s"})
    client.await_running(job, 60)
    location = client.await_savepoint(job, client.trigger_savepoint(
        job, target_directory=None)).location

    rescaled = check_state(running, 2, {}, location, False, cache)
    assert rescaled.summary == "compatible"
    assert starts(flink, running, location, False, parallelism=2)
    filtered = program(AGGREGATION.replace("FROM clicks", "FROM clicks WHERE page <> 'x'"))
    changed = check_state(filtered, 1, {}, location, False, cache)
    assert re.fullmatch(r"not restorable \(1 operator's state would be dropped: "
                        r"GroupAggregate\[\d+\]; allowNonRestoredState: true would drop it\)",
                        changed.summary), changed.summary   # ([n]: the planner's count)
    assert starts(flink, filtered, location, False) == changed.restorable


def test_what_cannot_be_read_here_is_unchecked_with_its_reason(counter_jar, tmp_path):
    with pytest.raises(StateUnchecked, match="cannot be read from the agent's machine"):
        saved_states(str(tmp_path / "no-such-savepoint"), tmp_path / "cache")
    with pytest.raises(StateUnchecked, match="ClassNotFoundException: com.example.Nothing"):
        check_state(JobProgram(counter_jar, "com.example.Nothing", []), 1, {},
                    str(tmp_path), False, tmp_path / "cache")
