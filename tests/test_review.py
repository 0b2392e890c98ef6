"""`plan` output for reviewers: Markdown and JSON, checked against golden files, one deployment
per action kind; and its exit codes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.model.compatibility import Operator, SavedState, StateCheck, compatibility
from agent.model.observation import Observation
from agent.plan import held
from agent.model.verdict import SignatureVerdict, Verdict, WindowVerdict
from agent.sync_windows import gated
from agent.report.review import Review, ReviewSet, render_json, render_markdown
from test_plan import applied, decide, deployment, running

GOLDEN = Path(__file__).parent / "golden"


def reviewed(name: str, desired, previous, observation, **extra) -> Review:
    """A deployment as `plan` shows it: planned by the real planner, held as `sync` holds it
    when its spec is invalid or a policy denies it."""
    diff, decided = decide(desired, previous, observation)
    if extra.get("problems"):
        decided = held(name, "spec refused; the running job is left as it is")
    elif extra.get("window") and not extra["window"].open:
        decided = gated(decided, diff, extra["window"], override=False)
    elif extra.get("verdict") and extra["verdict"].denied:
        decided = held(name, "denied by policy; the running job is left as it is", blocked=True)
    return Review(name, decided, diff.fields, **extra)


def every_action() -> ReviewSet:
    """One deployment per action kind, planned by the real planner (fixtures of test_plan)."""
    suspended = applied(deployment(state="SUSPENDED"), savepoint="file:/savepoints/sp-1")
    suspended.status.state = "SUSPENDED"
    return ReviewSet("a" * 40, "b" * 40, (
        reviewed("start", deployment(), None, Observation(True)),
        reviewed("stateful-upgrade", deployment(4), applied(deployment()), running(),
                 inherited=(("spec.template.spec.parallelism", 4, "DeploymentDefaults prod"),)),
        reviewed("stateless-upgrade", deployment(2, upgrade="STATELESS", restore="NONE"),
                 applied(deployment(upgrade="STATELESS", restore="NONE")), running()),
        reviewed("suspend", deployment(state="SUSPENDED"), applied(deployment()), running()),
        reviewed("resume", deployment(), suspended, running(flink_status="FINISHED")),
        reviewed("cancel", deployment(state="CANCELLED"), applied(deployment()), running()),
        reviewed("pending", deployment(2, upgrade="NONE"), applied(deployment(upgrade="NONE")),
                 running()),
        reviewed("delete", None, applied(deployment()), running()),
        reviewed("blocked", deployment(2), applied(deployment()), running(),
                 verdict=Verdict(denials=("policies/max.rego: blocked: too wide",))),
        reviewed("warned", deployment(2, restore="NONE"), applied(deployment(restore="NONE")),
                 running(), verdict=Verdict(warnings=("(built-in) x.rego: warned: careful",))),
        reviewed("invalid", None, applied(deployment()), running(),
                 problems=("deployments/invalid.yaml:7: Deployment spec.paralelism: unknown "
                           "field (a typo?)",)),
        reviewed("unchanged", deployment(), applied(deployment()), running(), offline=True),
        state_checked(),
        reviewed("deferred", deployment(3), applied(deployment()), running(),
                 window=WindowVerdict(("weekend-freeze",), "weekend-freeze", "deny",
                                      "2026-12-07T07:00:00Z", "Mon 2026-12-07 08:00 CET",
                                      manual_sync=True)),
    ), signature=SignatureVerdict("main", "a" * 40, checked=True, signer="alice@example.com",
                                  applied="a" * 40))


def state_checked() -> Review:
    """An upgrade whose new job lost the uid of a stateful operator: refused by its state check."""
    review = reviewed("state-checked", deployment(4), applied(deployment()), running())
    check = StateCheck(compatibility(
        [Operator("e", None, "events", "events", -1), Operator("c", None, "counts", "counts", -1)],
        [SavedState("e", "events", "events", 128, True),
         SavedState("k", "count-per-key", "count per key", 128, True)],
        "file:/savepoints/sp-2", allow_non_restored_state=False))
    return replace(review, plan=replace(review.plan, state_check=check))


def test_the_markdown_plan_matches_its_golden_file():
    assert render_markdown(every_action()) == (GOLDEN / "plan.md").read_text()


def test_the_json_plan_matches_its_golden_file():
    assert render_json(every_action()) == (GOLDEN / "plan.json").read_text()


def test_plan_exit_codes_say_nothing_changes_or_changes_or_refused():
    nothing = ReviewSet("a" * 40, None, (reviewed("same", deployment(), applied(deployment()),
                                                  running()),))
    assert nothing.exit_code == 0
    change = ReviewSet("a" * 40, None, (reviewed("up", deployment(2), applied(deployment()),
                                                 running()),))
    assert change.exit_code == 2
    assert every_action().exit_code == 1  # a denial and an invalid spec among them
