"""Jobs started by hand (through Flink's REST API, as `flink run` does) taken over by a
deployment as they run, then upgraded with their state; `flink-gitops import` writing the
starting specs; and an adopt annotation that cannot be honoured (real Flink, real git)."""

from __future__ import annotations

from pathlib import Path

import requests
import yaml

from agent.diff import adopted_jobs, difference, to_adopt
from agent.load import load
from agent.model.observation import ClusterView, ObservedJob
from agent.plan import plan
from agent.reconcile import review, sync
from conftest import applied, counter_deployment, deployment
from test_commands import run

ANNOTATION = "flink-gitops.io/adopt-job-id"


def started_by_hand(url: str, jar: Path, parallelism: int = 1) -> str:
    """A counter job submitted as a team would by hand: its jar uploaded, run with Flink's own
    random job id; returns the id once it runs."""
    with jar.open("rb") as content:
        uploaded = requests.post(f"{url}/jars/upload", timeout=30, files={
            "jarfile": ("counter-by-hand.jar", content, "application/x-java-archive")}).json()
    jar_id = uploaded["filename"].rsplit("/", 1)[-1]
    answer = requests.post(f"{url}/jars/{jar_id}/run", timeout=60, json={
        "entryClass": "com.example.Counter", "programArgsList": ["--rate", "20", "--keys", "4"],
        "parallelism": parallelism,
        "flinkConfiguration": {"execution.checkpointing.interval": "1s"}}).json()
    return answer["jobid"]


def adopting(name: str, job: str, **fields) -> str:
    return counter_deployment(name, **fields).replace(
        "  labels: {team: test}",
        f"  labels: {{team: test}}\n  annotations: {{{ANNOTATION}: '{job}'}}")


HAND = "cd680f4e993e0a2b19d9b1bb153edf38"


def test_an_adopt_annotation_that_is_not_a_job_id_is_a_problem_at_its_line():
    [problem] = load({"d.yaml": adopting("orders", "my-job")}).problems
    assert problem.line == 6 and "not a Flink job id (32 hex digits" in problem.message


def test_adoption_is_planned_once_with_no_flink_call_and_the_job_observed_as_generation_0():
    wanted = deployment(annotations={ANNOTATION: HAND.upper()})
    view = ClusterView(True, jobs={HAND[:16]: [ObservedJob(HAND, 0x2b19d9b1, "RUNNING")]})
    observation = view.of("orders", adopted_jobs("orders", wanted, None))
    assert [(j.id, j.generation) for j in observation.jobs] == [(HAND, 0)]
    decided = plan(difference("orders", wanted, wanted.job_hash(), None, observation), wanted,
                   None, observation)
    assert (decided.action, decided.steps, decided.state, decided.adopts) == (
        "ADOPT", (), "UNCHANGED", HAND)
    done = applied(wanted)
    done.status.adopted_job_id = HAND
    assert to_adopt(wanted, done.status) is None         # satisfied for good
    assert adopted_jobs("orders", wanted, done.status) == ()   # (its own job runs now)


def test_a_job_started_by_hand_is_imported_adopted_without_restart_then_upgraded_with_its_state(
        spec_repo, settings, flink, counter_jar, rest, tmp_path):
    job = started_by_hand(flink.url, counter_jar)
    rest.wait_state(job, "RUNNING")
    rest.wait_checkpoint(job)
    started_at = rest.get(f"/jobs/{job}")["start-time"]
    spec_repo.write_target("test", flink.url)
    spec_repo.add_file("jobs/counter.jar", counter_jar)
    spec_repo.push("a target, nothing deployed")

    out = spec_repo.checkout / "deployments"
    imported = run("import", "--repo", str(spec_repo.remote), "--target", "test",
                   "--workdir", str(tmp_path / "import"), "--out", str(out))
    assert imported.returncode == 0, imported.stderr
    [written] = out.iterdir()
    spec = yaml.safe_load(written.read_text())
    assert spec["metadata"]["annotations"] == {ANNOTATION: job}
    assert spec["spec"]["template"]["spec"]["parallelism"] == 1
    assert spec["spec"]["template"]["spec"]["flinkConfiguration"] == {
        "execution.checkpointing.interval": "1s"}
    assert "counter-by-hand.jar" in written.read_text()   # the jar (or the cluster's jars)
    name = spec["metadata"]["name"]
    artifact = spec["spec"]["template"]["spec"]["artifact"]     # completed by the team
    artifact.update(jarUri="jobs/counter.jar", entryClass="com.example.Counter",
                    mainArgs="--rate 20 --keys 4")
    written.write_text(yaml.safe_dump(spec))
    spec_repo.push("adopt the job started by hand")

    [planned] = review(settings).reviews
    assert (planned.action, planned.plan.state, planned.plan.steps) == ("ADOPT", "UNCHANGED", ())
    assert sync(settings).exit_code == 0
    status = spec_repo.status_of(name)
    assert (status["job"]["id"], status["state"], status["sync"]) == (job, "RUNNING", "SYNCED")
    assert status["lastAction"]["kind"] == "ADOPT"
    assert rest.running() == [job]                                     # not restarted
    assert rest.get(f"/jobs/{job}")["start-time"] == started_at
    assert sync(settings).exit_code == 0                               # and nothing more to do
    assert spec_repo.status_of(name)["lastAction"]["kind"] == "ADOPT"

    spec["spec"]["template"]["spec"]["parallelism"] = 2
    written.write_text(yaml.safe_dump(spec))
    spec_repo.push("parallelism 2")
    assert sync(settings).exit_code == 0
    upgraded = rest.job(name, 1)
    status = spec_repo.status_of(name)
    assert status["lastAction"]["kind"] == "STATEFUL_UPGRADE"
    assert rest.jobs()[job] == "FINISHED" and rest.parallelism(upgraded) == 2
    assert rest.restored_from(upgraded) == status["lastSavepoint"]["location"]
    assert status["lastSavepoint"]["jobId"] == job


def test_an_adopt_annotation_that_cannot_be_honoured_is_invalid_and_touches_nothing(
        deployed, spec_repo, settings, flink, counter_jar, rest):
    job = started_by_hand(flink.url, counter_jar)
    rest.wait_state(job, "RUNNING")
    spec_repo.write("deployments/ghost.yaml", adopting("ghost", "0123456789abcdef" * 2))
    spec_repo.write("deployments/wider.yaml", adopting("wider", job, parallelism=2))
    spec_repo.push("two adoptions that cannot be")
    assert sync(settings).exit_code == 1
    ghost, wider = spec_repo.status_of("ghost"), spec_repo.status_of("wider")
    assert (ghost["sync"], wider["sync"]) == ("INVALID", "INVALID")
    assert "job 0123456789abcdef0123456789abcdef is not on the cluster of target 'test'" \
        in ghost["errors"][0]["message"]
    assert (ghost["errors"][0]["file"], ghost["errors"][0]["line"]) == ("deployments/ghost.yaml", 6)
    assert f"job {job} runs with parallelism 1, the spec says 2" in wider["errors"][0]["message"]
    assert rest.running() == [job]
