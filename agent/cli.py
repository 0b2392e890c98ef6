"""The `flink-gitops` command: thin wrappers around the pipeline (I/O: terminal).

Exit codes follow DESIGN §3: `sync` 0 when every deployment is in its desired state, 1 when some
is not, 2 for usage or configuration errors.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from agent.config import DEFAULT_STATUS_BRANCH, Settings, default_workdir
from agent.errors import ConfigError, FlinkGitopsError, LocalClusterError
from agent.terminal import console, errors, plain, print_sync, say, table
from agent.model.spec import SPEC_KINDS

if TYPE_CHECKING:
    from rich.table import Table

    from agent.model.status import DeploymentStatus


@click.group(context_settings={"auto_envvar_prefix": "FLINK_GITOPS"})
@click.option("-v", "--verbose", is_flag=True, help="Log every step.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Human-readable lines or JSON lines (secrets redacted).")
def main(verbose: bool, log_format: str) -> None:
    """Run Apache Flink jobs from git: specs in, savepoint-safe upgrades, status on a branch."""
    from agent import logs

    logs.configure(logging.INFO if verbose else logging.WARNING, log_format == "json")


def workdir_option(function):
    return click.option("--workdir", type=click.Path(path_type=Path), default=None,
                        help="Where the agent keeps its clone, artifacts and local cluster "
                             "[env FLINK_GITOPS_WORKDIR, default ~/.flink-gitops].")(function)


FILE_JAR_DIR_HELP = ("A directory file:// jarUris may point into (repeat for more); the work "
                     "dir always [default: no other].")
MAX_DELETIONS_HELP = ("Deletions one cycle may carry out; a cycle that would delete more "
                      "deletes none [default: the larger of 1 and 10 % of the deployments "
                      "known to the status].")


def spec_repo_options(function):
    for option in reversed([
        click.option("--repo", required=True, help="Spec repository: a path or a git URL."),
        click.option("--branch", default="main", show_default=True),
        click.option("--path", default=".", show_default=True,
                     help="Folder of the specs in the repo."),
        click.option("--status-branch", default=DEFAULT_STATUS_BRANCH, show_default=True),
        click.option("--policy-package", default="main", show_default=True,
                     help="Rego package of the deny/warn rules."),
    ]):
        function = option(function)
    return workdir_option(function)


def _status_url(context, parameter, value: str | None) -> str | None:
    """A --status-url template, checked: only {deployment} and {branch}, an http(s) address."""
    if value is None:
        return None
    try:
        shown = value.format(deployment="d", branch="b")
    except (KeyError, IndexError, ValueError) as error:
        raise click.BadParameter(f"{value!r}: a template of {{deployment}} and {{branch}} only "
                                 f"({type(error).__name__}: {error})") from None
    if not shown.startswith(("https://", "http://")):
        raise click.BadParameter(f"{value!r}: an http:// or https:// address")
    return value


def _shard_selector(context, parameter, value: str | None) -> str | None:
    """A --shard-selector, checked (`agent.model.shard`), in its one canonical form."""
    from agent.model.shard import Selector

    try:
        return str(Selector.parse(value)) or None
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None


TRUST_OPTIONS = [
    click.option("--allowed-signers", type=click.Path(path_type=Path), default=None,
                 help="Trusted SSH signers, in git's allowed-signers format "
                      "(gpg.ssh.allowedSignersFile): the spec branch's head must be signed by "
                      "one [default: commits are not verified]."),
    click.option("--trusted-gpg-keyring", type=click.Path(path_type=Path), default=None,
                 help="Trusted OpenPGP public keys (a keyring, `gpg --export`): the head must be "
                      "signed by one [default: commits are not verified]."),
    click.option("--verify-every-commit", is_flag=True, default=False,
                 help="With --allowed-signers or --trusted-gpg-keyring: every commit since the "
                      "last verified one must be signed, not only the head."),
]


def trust_options(function):
    """The options naming whose commits the agent trusts (`sync`, `run`, `plan`)."""
    for option in reversed(TRUST_OPTIONS):
        function = option(function)
    return function


def acting_options(function):
    """The options of the commands that act (`sync`, `run`); they arrive as `settings`."""
    options = [
        click.option("--job-start-timeout", default=120.0, show_default=True,
                     help="Seconds a started job may take until every task runs."),
        click.option("--rollback/--no-rollback", default=True, show_default=True,
                     help="When an upgraded job cannot start, start the previous spec again."),
        click.option("--lease-ttl", default=900.0, show_default=True,
                     help="Seconds a crashed agent's lease keeps other agents from acting."),
        click.option("--actions-per-target", default=1, show_default=True,
                     type=click.IntRange(min=1),
                     help="Actions run at once on one cluster (clusters are acted on at once)."),
        click.option("--max-deletions", type=click.IntRange(min=0), default=None,
                     help=MAX_DELETIONS_HELP),
        click.option("--file-jar-dir", "file_jar_dirs", multiple=True,
                     type=click.Path(path_type=Path), help=FILE_JAR_DIR_HELP),
        click.option("--status-url", default=None, callback=_status_url,
                     help="A deployment's status page on the git host, for links: a template "
                          "of {deployment} and {branch} [default: no links]."),
        click.option("--commit-status", type=click.Choice(["github", "gitlab", "gitea"],
                                                          case_sensitive=False), default=None,
                     help="Report each action as a commit status on the spec commit, on this "
                          "git host [default: none]."),
        click.option("--commit-status-url", default=None,
                     help="The git host's address: GitHub's API by default "
                          "(https://api.github.com; Enterprise: https://HOST/api/v3); GitLab "
                          "and Gitea: the server, e.g. https://gitlab.example.com (required)."),
        click.option("--commit-status-repo", default=None,
                     help="The spec repo on the git host: owner/name (GitLab: the project's "
                          "id or path)."),
        click.option("--commit-status-token", default=None,
                     help="The git host's API token as a secret reference, e.g. "
                          "'${GITHUB_TOKEN}' or '${file:/run/secrets/git-token}'; expanded "
                          "only for the request."),
        click.option("--shard-selector", default=None, callback=_shard_selector,
                     help="Act only on the deployments this selects, for several agents sharing "
                          "one spec repo: label requirements key=value, key==value or "
                          "key!=value, comma-separated, all of which must hold; target=NAME is "
                          "the deployment's DeploymentTarget [default: every deployment]."),
        click.option("--notify", multiple=True,
                     help="A webhook told of failed actions, rollbacks, unhealthy jobs, "
                          "policy blocks and healed drift: URL[;label=value,...] (only the "
                          "deployments with those labels); the URL may hold secret references. "
                          "Repeat for more [default: none]."),
        *TRUST_OPTIONS,
        click.option("--signing-key", type=click.Path(path_type=Path), default=None,
                     help="An SSH private key the agent signs its status commits with "
                          "[default: unsigned]."),
    ]

    @functools.wraps(function)
    def with_settings(repo, branch, path, status_branch, policy_package, workdir,
                      job_start_timeout, rollback, lease_ttl, actions_per_target, max_deletions,
                      file_jar_dirs, status_url, commit_status, commit_status_url,
                      commit_status_repo, commit_status_token, shard_selector, notify,
                      allowed_signers, trusted_gpg_keyring, verify_every_commit, signing_key,
                      **rest):
        settings = Settings(repo, branch, path, status_branch, workdir or default_workdir(),
                            job_start_timeout, rollback, lease_ttl, policy_package,
                            actions_per_target, max_deletions, tuple(file_jar_dirs),
                            status_url, commit_status=commit_status,
                            commit_status_url=commit_status_url,
                            commit_status_repo=commit_status_repo,
                            commit_status_token=commit_status_token, notify=tuple(notify),
                            shard_selector=shard_selector, allowed_signers=allowed_signers,
                            trusted_gpg_keyring=trusted_gpg_keyring,
                            verify_every_commit=verify_every_commit, signing_key=signing_key)
        from agent.commit_status import CommitStatuses
        from agent.notify import Notifier

        try:   # a wrong --commit-status* or --notify: a usage error (exit 2), before anything
            outgoing = (CommitStatuses.of(settings), Notifier.of(settings))
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        missing = [why for each in outgoing for why in each.unresolved()]
        if missing:   # a secret reference this machine cannot expand, so far
            raise click.UsageError(missing[0])
        return function(settings, **rest)

    for option in reversed(options):
        with_settings = option(with_settings)
    return spec_repo_options(with_settings)


@main.command()
@acting_options
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="While an upgrade is in its upgradeStabilityWindow, run a cycle every 5 s "
                   "until it is stable or rolled back; --no-wait leaves it to later cycles.")
@click.option("--override-window", is_flag=True, default=False,
              help="A manual sync: act inside the sync windows that allow it (manualSync: "
                   "true); recorded in each deployment's events.")
def sync(settings: Settings, wait: bool, override_window: bool) -> None:
    """One full cycle: pull, plan, execute, report."""
    from agent.reconcile import sync as run_sync, sync_until_settled

    settings = replace(settings, override_window=override_window)
    try:
        result = sync_until_settled(settings, print_sync) if wait else run_sync(settings)
    except ConfigError as error:
        say("configuration error", "red", error)
        sys.exit(2)
    except FlinkGitopsError as error:
        say("sync failed", "red", error)
        sys.exit(1)
    print_sync(result)
    sys.exit(result.exit_code)


@main.command()
@spec_repo_options
@click.option("--base", default=None, help="Show the change from this revision to --head.")
@click.option("--head", default=None, help="The revision to plan [default: --branch].")
@click.option("--format", "output", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--max-deletions", type=click.IntRange(min=0), default=None, help=MAX_DELETIONS_HELP)
@click.option("--file-jar-dir", "file_jar_dirs", multiple=True, type=click.Path(path_type=Path),
              help=FILE_JAR_DIR_HELP)
@trust_options
def plan(repo: str, branch: str, path: str, status_branch: str, policy_package: str,
         workdir: Path | None, base: str | None, head: str | None, output: str,
         max_deletions: int | None, file_jar_dirs: tuple[Path, ...],
         allowed_signers: Path | None, trusted_gpg_keyring: Path | None,
         verify_every_commit: bool) -> None:
    """What sync would do; changes nothing anywhere (exit 0 nothing to do, 2 changes, 1 error
    or a policy denial)."""
    from agent.reconcile import review
    from agent.report.review import render_json, render_markdown

    settings = Settings(repo, branch, path, status_branch, workdir or default_workdir(),
                        policy_package=policy_package, max_deletions=max_deletions,
                        file_jar_dirs=file_jar_dirs, allowed_signers=allowed_signers,
                        trusted_gpg_keyring=trusted_gpg_keyring,
                        verify_every_commit=verify_every_commit)
    try:
        reviews = review(settings, base, head)
    except FlinkGitopsError as error:
        say("plan failed", "red", error)
        sys.exit(1)
    from agent.logs import redact

    click.echo(redact(render_json(reviews) if output == "json" else render_markdown(reviews)),
               nl=False)
    sys.exit(reviews.exit_code)


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path),
                default=".")
@click.option("--policy-package", default="main", show_default=True)
def validate(path: Path, policy_package: str) -> None:
    """Offline check of a checkout: schema, targets and policies (exit 0 valid, 1 invalid)."""
    from agent.validate import validate as check

    try:
        result = check(path, policy_package)
    except FlinkGitopsError as error:
        say("error", "red", error)
        sys.exit(1)
    for line in [str(p) for p in result.problems] + list(result.denials):
        plain(line, errors)
    for line in result.warnings:
        plain(f"warning: {line}", errors)
    console.print("valid" if result.valid else "invalid")
    sys.exit(0 if result.valid else 1)


@main.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
def convert(paths: tuple[Path, ...]) -> None:
    """Prints spec files (FlinkSessionJobs, Ververica exports) in the agent's own dialect, with a
    comment for what is left out; a directory: its YAML files. Exit 1 if a document cannot be
    read (it is not printed)."""
    from agent.convert import converted
    from agent.load import parse_file
    from agent.validate import spec_files

    files = spec_files(list(paths))
    text, problems = converted({name: parse_file(name, data) for name, data in files.items()})
    click.echo(text, nl=False)
    for problem in problems:
        plain(problem, errors)
    sys.exit(1 if problems else 0)


@main.command("import")
@click.option("--repo", required=True, help="Spec repository: a path or a git URL.")
@click.option("--branch", default="main", show_default=True)
@click.option("--path", default=".", show_default=True, help="Folder of the specs in the repo.")
@click.option("--target", required=True, help="The DeploymentTarget whose jobs are imported.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one NAME.yaml per job into this folder (an existing file is not "
                   "overwritten) [default: print them].")
@workdir_option
def import_(repo: str, branch: str, path: str, target: str, out: Path | None,
            workdir: Path | None) -> None:
    """A starting Deployment for each running job of a target's cluster that no deployment
    runs yet, with the annotation that adopts it as it runs: complete, review, commit."""
    from agent.adoption import import_jobs
    from agent.source import SpecRepository

    try:
        specs = import_jobs(SpecRepository(repo, workdir or default_workdir()), branch, path,
                            target, workdir or default_workdir())
    except FlinkGitopsError as error:
        say("import failed", "red", error)
        sys.exit(1)
    if not specs:
        plain(f"no running job of target {target!r} is left to import", errors)
    for name, text in specs:
        if out is None:
            click.echo(f"---\n{text}", nl=False)
            continue
        out.mkdir(parents=True, exist_ok=True)
        file = out / f"{name}.yaml"
        if file.exists():
            plain(f"{file} exists: not overwritten", errors)
            continue
        file.write_text(text)
        plain(f"wrote {file}", errors)


@main.command()
@click.option("--kind", type=click.Choice(list(SPEC_KINDS)), default=None,
              help="Only this kind [default: all, as oneOf].")
def schema(kind: str | None) -> None:
    """The JSON Schema of the spec kinds, for editors' YAML validation."""
    from agent.model.schema import json_schema

    click.echo(json_schema(kind))


@main.command()
@acting_options
@click.option("--interval", default="30s", show_default=True, callback=lambda c, p, v: _seconds(v),
              help="How often git is polled (s, m or h, at least 1s, a tenth of jitter); a cycle "
                   "runs when it moved or the last cycle left something to do.")
@click.option("--drift-interval", default="1m", show_default=True,
              callback=lambda c, p, v: _seconds(v),
              help="How often every cluster is checked for drift, even when git did not move.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True,
              callback=lambda c, p, v: _address(v),
              help="host:port of /hooks/git, /healthz, /readyz and /metrics.")
@click.option("--unready-after", default=3, show_default=True, type=click.IntRange(min=1),
              help="Failed cycles in a row (git or a cluster unreachable…) after which /readyz "
                   "answers 503, until a cycle completes.")
@click.option("--heartbeat-interval", default="5m", show_default=True,
              callback=lambda c, p, v: _seconds(v),
              help="How often, at most, a cycle pushes the agent's heartbeat (a ref beside the "
                   "status branch, read by `status`); `status` warns after 3 intervals.")
def run(settings: Settings, interval: float, drift_interval: float,
        listen: tuple[str, int], unready_after: int, heartbeat_interval: float) -> None:
    """The daemon: cycles on git changes (polled, or pushed by webhook: secret in
    FLINK_GITOPS_WEBHOOK_SECRET) and drift checks, and a heartbeat; SIGTERM finishes the
    running actions, pushes status and exits 0."""
    from agent.daemon import Daemon

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        daemon = Daemon(settings, interval, *listen, drift_interval, unready_after,
                        heartbeat_interval)
    except OSError as error:
        raise click.BadParameter(f"cannot listen on {listen[0]}:{listen[1]}: "
                                 f"{error.strerror or error}", param_hint="'--listen'") from None
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    sys.exit(daemon.run())


MIN_INTERVAL_S = 1.0


def _seconds(duration: str) -> float:
    """'30s', '5m', '1h' -> seconds (at least MIN_INTERVAL_S, a finite number)."""
    try:
        seconds = float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]
    except (KeyError, ValueError, IndexError):
        raise click.BadParameter(f"{duration!r}: a number with s, m or h") from None
    if not math.isfinite(seconds) or seconds < MIN_INTERVAL_S:
        raise click.BadParameter(f"{duration!r}: at least {MIN_INTERVAL_S:g}s, and finite")
    return seconds


def _address(listen: str) -> tuple[str, int]:
    """'host:port' -> (host, port); the host defaults to 127.0.0.1."""
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{listen!r}: host:port, with a port from 1 to 65535")
    return host.strip("[]") or "127.0.0.1", int(port)


def status_branch_options(function):
    """The options of the commands that read the status branch (`status`, `savepoints`)."""
    function = click.option("--status-branch", default=DEFAULT_STATUS_BRANCH,
                            show_default=True)(workdir_option(function))
    return click.option("--repo", required=True,
                        help="Spec repository: a path or a git URL.")(function)


def read_status_branch(repo: str, status_branch: str,
                       workdir: Path | None) -> dict[str, DeploymentStatus]:
    """The status documents on the status branch of `repo` (fetched), by deployment name; each
    document that cannot be read is a warning. Exit 1 when the repo cannot be fetched or read."""
    from agent.status_store import StatusStore
    from agent.source import SpecRepository

    source = SpecRepository(repo, workdir or default_workdir())
    try:
        source.fetch()
        read, unreadable = StatusStore(source, status_branch).read()
    except FlinkGitopsError as error:
        say("error", "red", error)
        sys.exit(1)
    for why in unreadable.values():
        plain(f"warning: {why}", errors)
    return read


def print_table(shown: Table) -> None:
    """A table on the terminal; to a pipe 200 columns wide, so that rows do not wrap."""
    (console if console.is_terminal else Console(width=200)).print(shown)


@main.command()
@status_branch_options
@click.option("--label", "labels", multiple=True, help="Only deployments with this key=value.")
def status(repo: str, status_branch: str, labels: tuple[str, ...], workdir: Path | None) -> None:
    """The dashboard table from the status branch, problems first, after when the agent was
    last seen (its heartbeat)."""
    from agent.clock import parse, utc_now
    from agent.report.cells import row_cells
    from agent.report.dashboard import ordered
    from agent.source import SpecRepository
    from agent.status_store import last_seen

    wanted = dict(label.partition("=")[::2] for label in labels)
    documents = [d for d in read_status_branch(repo, status_branch, workdir).values()
                 if all(d.metadata.labels.get(k) == v for k, v in wanted.items())]
    now = utc_now()  # a terminal reads live: ages count to now
    seen = last_seen(SpecRepository(repo, workdir or default_workdir()), status_branch,
                     parse(now))
    if seen.stale:
        say("warning", "yellow", seen.text)
    else:
        plain(seen.text)
    rows = []
    for document in ordered(documents):
        job, cells = document.status.job, row_cells(document, now)
        rows.append((cells["mark"], document.name, cells["state"], cells["sync"],
                     f"{job.flink_status} #{job.generation}" if job else "—",
                     cells["parallelism"], cells["restarts"], cells["savepoint"],
                     cells["action"]))
    print_table(table(f"{len(documents)} deployments ({status_branch})",
                      ("", "deployment", "state", "sync", "flink job", "parallelism",
                       "restarts", "last savepoint", "last action"), rows))
    for document in ordered(documents):
        for problem in document.status.errors:
            say(document.name, "yellow", f"{problem.kind.value}: {problem.message}")


@main.command()
@status_branch_options
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.argument("name", required=False)
def savepoints(repo: str, status_branch: str, workdir: Path | None, output: str,
               name: str | None) -> None:
    """The savepoints of deployment NAME (of every deployment without it) from the status
    branch, newest first: the id to restore one by (initialSavepointPath: savepoint:<id>),
    KEPT or DISPOSED."""
    from agent.logs import redact
    from agent.report.savepoints import savepoints_json

    documents = read_status_branch(repo, status_branch, workdir)
    if name is not None:
        documents = {name: _deployment(documents, name, status_branch)}
    if output == "json":
        click.echo(redact(json.dumps(savepoints_json(list(documents.values())), indent=2)))
    else:
        print_table(_savepoint_table(sorted(documents.values(), key=lambda d: d.name),
                                     status_branch, every=name is None))


def _deployment(documents: dict[str, DeploymentStatus], name: str,
                status_branch: str) -> DeploymentStatus:
    """The status document of deployment `name`; a usage error (exit 2) naming the deployments
    there are when there is none."""
    if name in documents:
        return documents[name]
    known = ", ".join(sorted(documents)[:20]) + (", …" if len(documents) > 20 else "")
    raise click.BadParameter(f"no deployment {name!r} on the status branch {status_branch} "
                             f"({'deployments: ' + known if known else 'no deployments'})",
                             param_hint="'NAME'")


def _savepoint_table(documents: list[DeploymentStatus], status_branch: str,
                     every: bool) -> Table:
    """Rows of savepoints, newest first per deployment; with `every`, a deployment column."""
    from agent.report.savepoints import COLUMNS, newest_first, savepoint_cells

    rows = [((document.name,) if every else ()) + savepoint_cells(savepoint)
            for document in documents
            for savepoint in newest_first(document.status.history.savepoints)]
    whose = f"{len(documents)} deployments" if every else documents[0].name
    shown = table(f"{len(rows)} savepoints of {whose} ({status_branch})",
                  (("deployment",) if every else ()) + COLUMNS, rows)
    for column in shown.columns[:-3]:   # names, ids and times stay whole: copied, grepped
        column.no_wrap = True
    for column in shown.columns[-3:]:   # a narrow terminal folds the rest, hiding nothing
        column.overflow = "fold"
    return shown


@main.group()
def local() -> None:
    """The embedded local Flink: its session cluster, and the deployments' own clusters."""


@local.command("start")
@click.option("--port", default=8081, show_default=True)
@click.option("--slots", default=4, show_default=True)
@workdir_option
def local_start(port: int, slots: int, workdir: Path | None) -> None:
    """Start the cluster (or reuse the one running on that port)."""
    from agent.flink import local as cluster

    try:
        started = cluster.start(workdir or default_workdir(), port=port, slots=slots)
    except LocalClusterError as error:
        say("error", "red", error)
        sys.exit(1)
    plain(f"Flink is running at {started.url} (logs: {started.log_dir})")


@local.command("stop")
@click.option("--port", default=8081, show_default=True)
@click.option("--deployment", default=None, help="End this deployment's own cluster "
              "(application mode) instead.")
@workdir_option
def local_stop(port: int, deployment: str | None, workdir: Path | None) -> None:
    """Stop the cluster started on that port, or a deployment's own cluster."""
    from agent.flink import application, local as cluster

    if deployment is not None:
        stopped = application.stop(workdir or default_workdir(), deployment)
        console.print("stopped" if stopped else f"no cluster of {deployment} was running")
        return
    stopped = cluster.stop(workdir or default_workdir(), port=port)
    console.print("stopped" if stopped else "no local cluster was running on that port")


@local.command("status")
@click.option("--port", default=8081, show_default=True)
@workdir_option
def local_status(port: int, workdir: Path | None) -> None:
    """Whether the session cluster runs, where, and its free slots; then every deployment's own
    cluster (application mode): its ports, pids and memory (exit 1 when nothing runs)."""
    from agent.flink import application, local as cluster

    workdir = workdir or default_workdir()
    state = cluster.status(workdir, port=port)
    if state.running:
        console.print(f"running at {state.url}: Flink {state.flink_version}, "
                      f"{state.slots_available}/{state.slots_total} slots free, pids {state.pids}")
    else:
        plain(f"not running (home: {state.home})")
    running = [own for own in application.clusters(workdir) if own.alive()]
    for own in running:
        alive = own.alive()
        memory = own.memory()
        taskmanagers = sum(role != application.JOBMANAGER for role in alive)
        plain(f"deployment {own.deployment}: {own.url} (rpc port {own.rpc_port}), job "
              f"{own.job_id}, memory jobmanager {memory.get('jobmanager', '?')} + "
              f"{taskmanagers} × taskmanager {memory.get('taskmanager', '?')}, pids "
              + ", ".join(f"{role} {pid}" for role, pid in sorted(alive.items())))
    if not state.running and not running:
        sys.exit(1)


@main.command()
@click.option("--port", default=8081, show_default=True, help="Port of the local Flink.")
@click.option("--keep", is_flag=True, help="Leave the local Flink and the job running.")
@workdir_option
def demo(port: int, keep: bool, workdir: Path | None) -> None:
    """The whole story on this machine: spec repo, local Flink, deploy, stateful upgrade."""
    from agent.demo import run_demo

    try:
        sys.exit(run_demo((workdir or default_workdir()) / "demo", port=port, keep=keep,
                          console=console))
    except FlinkGitopsError as error:
        say("demo failed", "red", error)
        sys.exit(1)


if __name__ == "__main__":
    main()
