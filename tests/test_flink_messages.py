"""Pure parts of the Flink REST client: polling cadence and Flink's messages."""

from itertools import islice

from agent.flink.rest import condense_trace, failure_cause, poll_delays


def test_polling_starts_fast_and_backs_off_to_one_second():
    delays = list(islice(poll_delays(60), 200))
    assert delays[0] == 0.05
    assert delays == sorted(delays)
    assert max(delays) == 1.0
    assert sum(delays[:5]) < 1.0  # a savepoint done in a second is seen within ~a second


def test_polling_stays_brisk_while_a_savepoint_or_a_start_usually_completes():
    delays = list(poll_delays(60))
    spent_before = [sum(delays[:i]) for i in range(len(delays))]
    timed = list(zip(delays, spent_before, strict=True))
    assert max(d for d, spent in timed if spent < 2) == 0.05
    assert max(d for d, spent in timed if spent < 10) <= 0.1


def test_polling_stops_when_the_timeout_is_spent():
    assert 9 <= sum(poll_delays(10)) <= 12


def test_a_java_stack_trace_keeps_flinks_message_lines_verbatim():
    trace = ("org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute.\n"
             "\tat org.apache.flink.Foo.bar(Foo.java:1)\n"
             "\t... 3 more\n"
             "Caused by: java.lang.ClassNotFoundException: com.example.Nope\n"
             "\tat java.base/java.net.URLClassLoader.findClass(URLClassLoader.java:445)\n")
    assert condense_trace(trace) == (
        "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute.\n"
        "Caused by: java.lang.ClassNotFoundException: com.example.Nope")


def test_a_failed_savepoint_names_its_cause():
    operation = {"failure-cause": {"class": "java.util.concurrent.CompletionException",
                                   "stack-trace": "java.io.IOException: Failed to create savepoint"
                                                  " directory at file:/x\n\tat a.b(C.java:1)"}}
    assert failure_cause(operation) == ("java.io.IOException: Failed to create savepoint "
                                        "directory at file:/x")


def test_odd_entries_of_the_jobs_overview_are_read_field_by_field():
    from agent.flink.rest import job_overview
    good = {"jid": "a" * 32, "name": "n", "state": "RUNNING", "start-time": 5, "end-time": -1,
            "tasks": {"total": 2, "running": 2}}
    assert job_overview(good).tasks == {"total": 2, "running": 2}
    assert job_overview({**good, "jid": "z" * 32}) is None        # not Flink's id: no job
    assert job_overview({**good, "jid": 42}) is None and job_overview("text") is None
    odd = job_overview({**good, "tasks": "many", "state": ["x"], "start-time": "soon"})
    assert (odd.tasks, odd.state, odd.start_time) == ({}, "UNKNOWN", -1)
    assert not odd.terminal     # an unknown state counts as active: nothing starts beside it


def test_polling_ends_on_the_wall_clock_even_when_polls_are_slow():
    now = [0.0]

    def clock() -> float:
        now[0] += 5.0   # every poll takes five seconds of requests
        return now[0]

    assert len(list(poll_delays(10, clock=clock))) <= 2
