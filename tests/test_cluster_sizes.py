"""A deployment's own cluster sized from Ververica's `resources`, `numberOfTaskManagers` and
`logging` (agent.model.resources, pure): the mapping table of the README, and bad values named
by their field."""

from __future__ import annotations

import textwrap

import pytest

from agent.flink.local import LOG4J_PROPERTIES
from agent.load import load
from agent.size_check import add_size_check, drop_size_warnings
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


# --- the size check of deployments on a target in application mode (agent.size_check) --------

def loaded_on(mode: str, template: str):
    """A spec repo's files: a local target in `mode` and a deployment with `template` lines."""
    return load({
        "targets/t.yaml": f"apiVersion: v1\nkind: DeploymentTarget\nmetadata: {{name: t}}\n"
                          f"spec: {{local: {{mode: {mode}}}}}\n",
        "deployments/d.yaml": "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
                              "  deploymentTargetName: t\n  template:\n    spec:\n"
                              "      artifact: {jarUri: jobs/a.jar}\n"
                              + textwrap.indent(textwrap.dedent(template), " " * 6)})


def checked(loaded, machine_mib=None, tmp_path=None):
    add_size_check(loaded, tmp_path, machine_mib)
    drop_size_warnings(loaded)
    return [(p.line, p.message) for p in loaded.problems], [w.message for w in loaded.warnings]


def test_the_size_fields_warn_on_a_session_target_and_take_effect_in_application_mode(tmp_path):
    template = "resources: {taskmanager: {memory: 2Gi}}\nnumberOfTaskManagers: 2\n"
    problems, warnings = checked(loaded_on("session", template), tmp_path=tmp_path)
    assert problems == [] and any("resources has no effect" in w for w in warnings)
    problems, warnings = checked(loaded_on("application", template), tmp_path=tmp_path)
    assert problems == [] and not any("resources" in w or "numberOf" in w for w in warnings)


def test_a_size_that_cannot_be_is_invalid_at_its_line(tmp_path):
    problems, _ = checked(loaded_on("application", "numberOfTaskManagers: 0\n"),
                          tmp_path=tmp_path)
    assert problems == [(9, "numberOfTaskManagers: 0 TaskManagers: at least 1, at most 64")]


def test_a_cluster_larger_than_the_machine_is_invalid_naming_what_it_needs(tmp_path):
    template = "resources: {taskmanager: {memory: 2Gi}}\nnumberOfTaskManagers: 3\n"
    problems, _ = checked(loaded_on("application", template), machine_mib=4096,
                          tmp_path=tmp_path)
    assert problems == [(10, "numberOfTaskManagers: the cluster needs 7,168 MiB (a JobManager of "
                             "1,024 MiB and 3 TaskManager(s) of 2,048 MiB), more than this "
                             "machine's 4,096 MiB")]
    assert checked(loaded_on("application", template), tmp_path=tmp_path)[0] == []   # validate


def test_a_size_change_is_a_change_of_the_job_only_on_a_cluster_of_its_own():
    small, large = (loaded_on("application", f"resources: {{taskmanager: {{memory: {m}}}}}\n")
                    .deployments["d"].spec for m in ("1Gi", "2Gi"))
    assert small.job_hash() == large.job_hash()
    assert small.job_hash(sized=True) != large.job_hash(sized=True)


def test_the_clusters_options_override_its_resources_and_cpu_is_a_warning(tmp_path):
    template = ("resources: {taskmanager: {memory: 1Gi, cpu: 2}}\nnumberOfTaskManagers: 3\n"
                "flinkConfiguration: {taskmanager.memory.process.size: 2g}\n")
    problems, warnings = checked(loaded_on("application", template), machine_mib=6000,
                                 tmp_path=tmp_path)
    assert [why for _, why in problems] == [
        "numberOfTaskManagers: the cluster needs 7,168 MiB (a JobManager of 1,024 MiB and 3 "
        "TaskManager(s) of 2,048 MiB), more than this machine's 6,000 MiB"]
    assert "resources.taskmanager.cpu 2 is not enforced on this machine (its processes share its "\
           "cores)" in warnings
