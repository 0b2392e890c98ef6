"""Several agents share one spec repo by shards (`--shard-selector`): each acts only on its own
deployments and writes only their status documents, the dashboard shows every deployment, a
deployment two live shards claim is BLOCKED naming both, and a shard whose agent was SIGKILLed
is finished by a replacement."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import testpoints
from agent.cli import main
from agent.config import Settings
from agent.errors import ConfigError
from agent.job_ids import deployment_key, generation_of
from agent.lease import Lease
from agent.model.shard import Placement, Selector
from agent.reconcile import sync
from agent.source import SpecRepository
from test_crash_safety import kill, start_frozen_at

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


# --- the selector ------------------------------------------------------------------------------

def claims(text: str, labels: dict, target: str | None = "t") -> bool:
    return Selector.parse(text).claims(Placement(labels, target))


def test_a_selector_holds_when_every_requirement_does_as_in_kubernetes():
    assert claims("team=payments", {"team": "payments", "env": "prod"})
    assert claims("team==payments,env!=dev", {"team": "payments", "env": "prod"})
    assert not claims("team=payments,env!=dev", {"team": "payments", "env": "dev"})
    assert claims("env!=dev", {})                       # no such label: not equal
    assert not claims("team=payments", {})
    assert claims("team=", {"team": ""}) and not claims("team=", {})


def test_target_is_the_deployments_deployment_target_not_a_label():
    assert claims("target=prod-cluster", {}, "prod-cluster")
    assert not claims("target=prod-cluster", {"target": "prod-cluster"}, "other")
    assert claims("target!=prod-cluster", {}, None)


def test_equal_selectors_however_written_share_one_name():
    one, other = Selector.parse(" env != dev , team==payments"), Selector.parse(
        "team=payments,env!=dev")
    assert one == other and str(one) == "env!=dev,team=payments" and one.digest == other.digest
    assert Selector.parse("team=a").digest != Selector.parse("team=b").digest


def test_no_selector_is_the_whole_repo_and_alone_claims_a_deployment_never_placed():
    assert Selector.parse(None).everything and Selector.parse("  ").everything
    assert Selector.parse(None).claims(None)
    assert not Selector.parse("team=a").claims(None)
    assert not Selector.parse("env!=dev").claims(None)


@pytest.mark.parametrize("text, says", [
    ("env in (prod,dev)", "not key=value"),
    ("team", "not key=value"),
    ("team=a=b", "not key=value"),
    ("-bad=a", "not a label key"),
    ("team=" + "x" * 64, "not a label value"),
    ("team=a b", "not key=value"),
])
def test_a_selector_kubernetes_would_not_read_is_refused_naming_the_requirement(text, says):
    with pytest.raises(ConfigError, match=says):
        Selector.parse(text)


def test_the_command_line_refuses_a_bad_selector_before_anything_runs(tmp_path):
    result = CliRunner().invoke(main, ["sync", "--repo", str(tmp_path), "--workdir",
                                       str(tmp_path / "w"), "--shard-selector", "env in (a)"])
    assert result.exit_code == 2
    assert "--shard-selector" in result.output and "not key=value" in result.output
    assert "Traceback" not in result.output


# --- two shards on one real Flink cluster -----------------------------------------------------

def shard_settings(spec_repo, tmp_path, selector: str) -> Settings:
    return Settings(str(spec_repo.remote), workdir=tmp_path / f"agent-{selector}",
                    shard_selector=selector)


def another_agents_lease(spec_repo, tmp_path, selector: str) -> Lease:
    """The lease of shard `selector`, as a live agent elsewhere would hold it (not yet taken)."""
    other = SpecRepository(str(spec_repo.remote), tmp_path / "other-agent")
    other.fetch()
    return Lease(other, "flink-gitops/status", shard=Selector.parse(selector))


def test_two_shards_on_one_cluster_act_on_their_own_and_share_one_dashboard(
        deployed, spec_repo, rest, tmp_path):
    deployed("shard-a-orders", labels="{team: a}")
    deployed("shard-b-clicks", labels="{team: b}")
    spec_repo.push()
    first, second = (shard_settings(spec_repo, tmp_path, f"team={team}") for team in "ab")

    results = {}
    both = [threading.Thread(target=lambda s=s: results.setdefault(s.shard_selector, sync(s)))
            for s in (first, second)]   # at once: their status pushes race, and are merged
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert [d.name for d in results["team=a"].documents] == ["shard-a-orders"]
    assert [d.name for d in results["team=b"].documents] == ["shard-b-clicks"]
    index = json.loads(spec_repo.status_file("status.json"))["deployments"]
    assert {name: entry["state"] for name, entry in index.items()} == {
        "shard-a-orders": "RUNNING", "shard-b-clicks": "RUNNING"}
    dashboard = spec_repo.status_file("README.md")
    assert "shard-a-orders" in dashboard and "shard-b-clicks" in dashboard
    job_a, job_b = rest.job("shard-a-orders", 1), rest.job("shard-b-clicks", 1)
    assert sorted(rest.running()) == sorted([job_a, job_b])

    deployed("shard-a-orders", labels="{team: a}", parallelism=2)
    spec_repo.push("shard a scales out")
    before = spec_repo.status_file("deployments/shard-a-orders.yaml")
    assert sync(second).outcomes == {}                 # not its deployment: left alone
    assert spec_repo.status_file("deployments/shard-a-orders.yaml") == before
    assert sorted(rest.running()) == sorted([job_a, job_b])
    upgraded = sync(first)
    assert upgraded.outcomes["shard-a-orders"].result.value == "SUCCESS"
    assert spec_repo.status_of("shard-a-orders")["job"]["parallelism"] == 2
    assert spec_repo.status_of("shard-b-clicks")["job"]["id"] == job_b   # kept as it was
    assert len(json.loads(spec_repo.status_file("status.json"))["deployments"]) == 2


def test_a_deployment_two_live_shards_claim_is_blocked_naming_both(
        deployed, spec_repo, rest, tmp_path):
    deployed("contested-prod", labels="{team: a, env: prod}")
    spec_repo.push()
    rival = another_agents_lease(spec_repo, tmp_path, "env=prod")
    rival.acquire()     # another agent, of shard env=prod, is live
    try:
        result = sync(shard_settings(spec_repo, tmp_path, "team=a"))
        status = spec_repo.status_of("contested-prod")
        assert result.outcomes == {} and rest.running() == []
        assert status["state"] != "RUNNING"
        said = json.dumps(status)
        assert "claimed by two shards" in said and "`team=a`" in said and "`env=prod`" in said
    finally:
        rival.release()
    assert sync(shard_settings(spec_repo, tmp_path, "team=a")).exit_code == 0   # alone again
    assert rest.running() == [rest.job("contested-prod", 1)]


def test_an_agent_of_the_whole_repo_leaves_a_live_shards_deployments_alone(
        deployed, spec_repo, rest, tmp_path, settings):
    deployed("sharded-only", labels="{team: a}")
    spec_repo.push()
    with another_agents_lease(spec_repo, tmp_path, "team=a"):
        result = sync(settings)
    assert result.outcomes == {} and rest.running() == []
    assert "the whole repo (no --shard-selector)" in json.dumps(spec_repo.status_of(
        "sharded-only"))


def test_a_deployment_moved_to_another_shard_mid_action_waits_for_the_old_shards_agent(
        deployed, spec_repo, rest, tmp_path):
    """A label change moves a deployment from shard a to shard b while a's agent is in the middle
    of its upgrade: b holds it while a's agent lives, and once that agent is gone (SIGKILLed)
    finishes the upgrade from Flink's records, restoring the savepoint a took."""
    deployed("moving", labels="{team: a}")
    spec_repo.push()
    first, second = (shard_settings(spec_repo, tmp_path, f"team={team}") for team in "ab")
    assert sync(first).exit_code == 0
    rest.wait_checkpoint(rest.job("moving", 1))
    deployed("moving", labels="{team: a}", parallelism=2)
    spec_repo.push("scale out")
    acting = start_frozen_at(testpoints.OLD_JOB_STOPPED, first, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while spec_repo.status_of("moving").get("lastAction", {}).get("result") != \
                "IN_PROGRESS":   # its progress commit
            assert time.monotonic() < deadline, "shard a never told its upgrade"
            time.sleep(0.1)
        deployed("moving", labels="{team: b}", parallelism=2)
        spec_repo.push("moved to team b")
        assert sync(second).outcomes == {}
        said = json.dumps(spec_repo.status_of("moving"))
        assert "moved here from the shard `team=a`" in said and "still acting" in said
        assert rest.running() == []                   # a stopped the old job; b started none
    finally:
        kill(acting)
    assert sync(second).exit_code == 0
    new = rest.job("moving", 2)
    assert rest.running() == [new] and rest.parallelism(new) == 2
    assert rest.restored_from(new) is not None        # the savepoint a's agent took


def test_a_refused_spec_no_shard_can_place_is_listed_by_every_shard_and_acted_on_by_none(
        deployed, spec_repo, rest, tmp_path):
    deployed("placed-fine", labels="{team: a}")
    spec_repo.write("deployments/never-placed.yaml", "apiVersion: v1\nkind: Deployment\n"
                    "metadata: {name: never-placed, labels: [not, a, mapping]}\nspec: {}\n")
    spec_repo.push()
    for team in "ab":
        result = sync(shard_settings(spec_repo, tmp_path, f"team={team}"))
        assert any("never-placed" in str(problem) for problem in result.unattributed)
        assert result.exit_code == 1
    index = json.loads(spec_repo.status_file("status.json"))
    assert sorted(index["deployments"]) == ["placed-fine"]
    assert {p["file"] for p in index["specProblems"]} == {"deployments/never-placed.yaml"}
    assert rest.running() == [rest.job("placed-fine", 1)]


# --- four agents over many deployments, one SIGKILLed --------------------------------------------

def test_four_agents_act_on_every_deployment_once_and_a_replacement_finishes_a_killed_shard(
        tmp_path):
    from shards import acted, run

    size, agents = 120, 4
    facts = run(tmp_path, size=size, clusters=4, agents=agents, timeout=240)
    names = [f"d{d:05d}" for d in range(size)]
    everyone = Counter(deployment_key(name) for name in names)
    shard_one = [f"d{d:05d}" for d in range(1, size, agents)]
    upgraded = Counter(deployment_key(name) for name in shard_one)
    assert acted(facts["deploy_changes"], "POST /jars/:id/run") == everyone   # each once
    assert facts["stopped_before_kill"] >= 1       # killed half way through the upgrades
    # only shard s1's deployments, each stopped and started once, despite the kill
    assert acted(facts["upgrade_changes"], "POST /jobs/:id/stop") == upgraded
    assert acted(facts["upgrade_changes"], "POST /jars/:id/run") == upgraded
    running = [job["jid"] for jobs in facts["jobs"].values() for job in jobs
               if job["state"] == "RUNNING"]
    assert Counter(job[:16] for job in running) == everyone   # one job per deployment
    assert {generation_of(job) for job in running if job[:16] in upgraded} == {2}
    index = facts["status"]["deployments"]
    assert sorted(index) == names                  # the dashboard is complete
    assert {name: index[name]["job"]["parallelism"] for name in shard_one} == \
        dict.fromkeys(shard_one, 2)
    assert all(name in facts["dashboard"] for name in names)
