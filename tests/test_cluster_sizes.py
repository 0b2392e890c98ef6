"""A deployment's own cluster sized from Ververica's `resources`, `numberOfTaskManagers` and
`logging` (agent.model.resources, pure): the mapping table of the README, and bad values named
by their field."""

from __future__ import annotations

import pytest

from agent.flink.local import LOG4J_PROPERTIES
from agent.model.resources import SizeError, cluster_size, mebibytes


@pytest.mark.parametrize("written, mib", [
    ("1Gi", 1024), ("512Mi", 512), ("1G", 954), ("2048m", 2048), ("1g", 1024), ("1.5Gi", 1536),
    ("1536mb", 1536), (1048576, 1), ("2Ti", 2 * 1024 * 1024),
])
def test_memory_is_a_kubernetes_quantity_or_a_flink_size_in_whole_mebibytes(written, mib):
    assert mebibytes(written, "resources.taskmanager.memory") == mib


@pytest.mark.parametrize("written", ["lots", "-1G", "1 GB", True, None, "1Gb", ""])
def test_a_memory_that_is_no_size_is_refused_naming_its_field(written):
    with pytest.raises(SizeError, match="resources.jobmanager.memory: .* is not a memory size"):
        mebibytes(written, "resources.jobmanager.memory")


def test_resources_become_the_process_sizes_and_cpu_is_a_note():
    size = cluster_size({"jobmanager": {"memory": "1Gi", "cpu": 1},
                         "taskmanager": {"memory": "2Gi", "cpu": 2}}, None, None, 4,
                        {"taskmanager.numberOfTaskSlots": "2"})
    assert size.options == {"jobmanager.memory.process.size": "1024m",
                            "taskmanager.memory.process.size": "2048m",
                            "taskmanager.cpu.cores": "2"}
    assert (size.taskmanagers, size.slots) == (2, 2)   # parallelism 4 over 2 slots each
    assert [n.split(" ")[0] for n in size.notes] == ["resources.jobmanager.cpu",
                                                    "resources.taskmanager.cpu"]


def test_task_managers_default_to_the_parallelism_over_the_slots_rounded_up():
    assert cluster_size(None, None, None, 5, {"taskmanager.numberOfTaskSlots": "2"}) \
        .taskmanagers == 3
    assert cluster_size(None, None, None, 1, {}).taskmanagers == 1
    assert cluster_size(None, 4, None, 1, {}).taskmanagers == 4


@pytest.mark.parametrize("resources, taskmanagers, logging, field", [
    ({"worker": {"memory": "1G"}}, None, None, "resources.worker"),
    ({"taskmanager": {"disk": "1G"}}, None, None, "resources.taskmanager.disk"),
    ({"taskmanager": {"cpu": 0}}, None, None, "resources.taskmanager.cpu"),
    ({"taskmanager": {"cpu": "two"}}, None, None, "resources.taskmanager.cpu"),
    (None, 0, None, "numberOfTaskManagers"),
    (None, 65, None, "numberOfTaskManagers"),
    (None, 1, None, "numberOfTaskManagers"),   # parallelism 2 on one slot
    (None, None, {"loggingProfile": "x"}, "logging.loggingProfile"),
    (None, None, {"log4jLoggers": {"": "LOUD"}}, 'logging.log4jLoggers.""'),
    (None, None, {"log4jLoggers": {"a b": "INFO"}}, "logging.log4jLoggers.a b"),
])
def test_a_size_that_cannot_be_is_refused_naming_its_field(resources, taskmanagers, logging,
                                                           field):
    with pytest.raises(SizeError) as refused:
        cluster_size(resources, taskmanagers, logging, 2, {})
    assert refused.value.path == field


def test_log_levels_set_the_root_logger_and_add_named_ones():
    size = cluster_size(None, None, {"log4jLoggers": {"": "warn", "org.apache.kafka": "DEBUG"}},
                        1, {})
    text = size.log4j(LOG4J_PROPERTIES)
    assert "rootLogger.level = WARN" in text and "rootLogger.level = INFO" not in text
    assert "logger.gitops0.name = org.apache.kafka\nlogger.gitops0.level = DEBUG" in text
    assert cluster_size(None, None, None, 1, {}).log4j(LOG4J_PROPERTIES) == LOG4J_PROPERTIES
