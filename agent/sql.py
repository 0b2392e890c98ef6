"""SQL deployments before they run: each SQLSCRIPT deployment's script, where its lines are in the
spec repository, and Flink's verdict on it placed at that file and line (pure, given a reader of
repo files and a checker — by default Flink's own parser and planner, `agent.flink.runner`).

An inline `sqlScript` written as a literal block (`sqlScript: |`) or on one line maps line for line
to its YAML file; a `sqlScriptFile` maps to the `.sql` file itself. Flink's positions ("at line 2,
column 17", relative to the failing statement) are rewritten to positions in that file, so the
message and its `file:line` agree. A folded or multi-line quoted script cannot be mapped: its
problems point at the `sqlScript` key and keep the script's own positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.errors import FlinkGitopsError, SqlCheckUnavailable
from agent.flink.runner import ScriptVerdict, check_scripts, missing_class
from agent.load import LoadResult, Located, SpecProblem
from agent.model.spec import ArtifactKind, Deployment

ReadFile = Callable[[str], bytes | None]
ARTIFACT = ("spec", "template", "spec", "artifact")
MAX_SCRIPT_BYTES = 1024 * 1024   # a sqlScriptFile above this is refused (inline: the file limit)
_POSITION = re.compile(r"\bline (\d+), column (\d+)")
_BLOCK = re.compile(r"sqlScript\s*:\s*([|>])[-+0-9]*\s*(#.*)?$")
_INLINE = re.compile(r"sqlScript\s*:\s*(['\"]?)")


@dataclass(frozen=True)
class SqlScript:
    """A deployment's SQL script and where its text is in the spec repo."""

    deployment: str
    text: str
    file: str            # the repo file holding the text: the YAML spec or the .sql file
    first_line: int      # the file line of the script's line 1
    indent: int = 0      # columns before the script's text on each of its lines
    mapped: bool = True  # whether script lines are file lines (first_line + n - 1)
    origin: str = "sqlScript"  # the artifact field it comes from (or sqlScriptFile)

    def place(self, line: int, column: int) -> tuple[int, int]:
        """A script position -> the file position (the script's own when not mapped)."""
        if not self.mapped:
            return line, column
        return self.first_line + line - 1, column + self.indent


@dataclass
class SqlCheck:
    """Problems (refused scripts, missing files) and warnings (checks not made) per deployment."""

    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecProblem] = field(default_factory=list)


Checker = Callable[[list[str]], list[ScriptVerdict]]
Libraries = Callable[[Located], list[Path]]   # a deployment -> its dependency jars, here


def check_sql(loaded: LoadResult, read: ReadFile, checker: Checker | None,
              cache_dir: Path | None = None, libraries: Libraries | None = None) -> SqlCheck:
    """Every SQLSCRIPT deployment of `loaded`, its script read and checked with `checker` (a
    list of scripts -> a verdict each; None: `agent.flink.runner.check_scripts` in `cache_dir`,
    with the jars `libraries` gives for the deployment on the classpath: its
    additionalDependencies)."""
    result = SqlCheck()
    scripts, jars = [], []
    for name, located in sorted(loaded.deployments.items()):
        if located.spec.spec.template.spec.artifact.kind != ArtifactKind.SQLSCRIPT \
                or loaded.problems_of("Deployment", name):
            continue   # not SQL, or refused already (its file missing, say)
        found = script_of(located, read)
        if isinstance(found, SpecProblem):
            result.problems.append(found)
            continue
        try:
            jars.append(libraries(located) if libraries else [])
        except FlinkGitopsError as error:   # a dependency not to be had here: not checked
            result.warnings.append(_problem(found, found.first_line,
                                            f"SQL script not checked: {error}"))
            continue
        scripts.append(found)
    if not scripts:
        return result
    try:
        texts = [script.text for script in scripts]
        verdicts = checker(texts) if checker else check_scripts(texts, cache_dir, jars)
    except SqlCheckUnavailable as error:
        for script in scripts:
            result.warnings.append(_problem(script, script.first_line,
                                            f"SQL script not checked: {error}"))
        return result
    for script, verdict in zip(scripts, verdicts, strict=True):
        if verdict.ok:
            continue
        problem = placed(script, verdict)
        if missing_class(verdict):
            result.warnings.append(SpecProblem(
                problem.file, problem.line,
                f"SQL script checked only in part: {problem.message} (a connector or class "
                "that is not on the agent's classpath; name its jar in FLINK_GITOPS_SQL_CLASSPATH "
                "to check it)", problem.kind, problem.name))
        else:
            result.problems.append(problem)
    return result


def script_of(located: Located, read: ReadFile) -> SqlScript | SpecProblem:
    """The script of a SQLSCRIPT deployment and where it is, or the problem of a missing file."""
    deployment: Deployment = located.spec
    artifact = deployment.spec.template.spec.artifact
    path = artifact.repo_file()
    if path is not None:
        content = read(path)
        line = located.line_of(*ARTIFACT, "sqlScriptFile")
        if content is None:
            return SpecProblem(located.file, line,
                               f"sqlScriptFile {artifact.sql_script_file}: no file {path} in "
                               "the spec repository", "Deployment", deployment.name)
        if len(content) > MAX_SCRIPT_BYTES:
            return SpecProblem(located.file, line,
                               f"sqlScriptFile {artifact.sql_script_file}: {len(content):,} "
                               f"bytes, over the limit of {MAX_SCRIPT_BYTES:,}", "Deployment",
                               deployment.name)
        return SqlScript(deployment.name, content.decode("utf-8", errors="replace"), path, 1,
                         origin="sqlScriptFile")
    key_line = located.line_of(*ARTIFACT, "sqlScript")
    yaml_text = (read(located.file) or b"").decode("utf-8", errors="replace").splitlines()
    return inline_script(deployment.name, artifact.sql_script or "", located.file, key_line,
                         yaml_text)


def inline_script(name: str, text: str, file: str, key_line: int,
                  yaml_lines: list[str]) -> SqlScript:
    """Where an inline `sqlScript` is in its YAML file, from the line of its key."""
    line = yaml_lines[key_line - 1] if 0 < key_line <= len(yaml_lines) else ""
    block = _BLOCK.search(line)
    if block:
        content = next((text_line for text_line in yaml_lines[key_line:] if text_line.strip()),
                       "")
        indent = len(content) - len(content.lstrip(" "))
        return SqlScript(name, text, file, key_line + 1, indent, mapped=block.group(1) == "|")
    inline = _INLINE.search(line)
    if inline and "\n" not in text.strip("\n"):
        return SqlScript(name, text, file, key_line, inline.end())
    return SqlScript(name, text, file, key_line, mapped=False)


def placed(script: SqlScript, verdict: ScriptVerdict) -> SpecProblem:
    """Flink's refusal of `script`, at its file and line, its positions rewritten to the file's
    (to the script's, with `of the script`, when it is not mapped)."""
    start_line, start_column = max(verdict.line, 1), max(verdict.column, 1)
    lines = []

    def rewrite(match: re.Match) -> str:
        line, column = int(match.group(1)), int(match.group(2))
        if verdict.line > 0:   # relative to the failing statement
            column = start_column + column - 1 if line == 1 else column
            line = start_line + line - 1
        line, column = script.place(line, column)
        lines.append(line)
        return f"line {line}, column {column}" + ("" if script.mapped else " of the script")

    message = _POSITION.sub(rewrite, verdict.message)
    line = lines[0] if lines else script.place(start_line, start_column)[0]
    if not script.mapped:
        line = script.first_line
    return _problem(script, line, f"{script.origin}: {message}")


def _problem(script: SqlScript, line: int, message: str) -> SpecProblem:
    return SpecProblem(script.file, line, message, "Deployment", script.deployment)


def add_sql_check(loaded: LoadResult, read: ReadFile, cache_dir: Path,
                  checker: Checker | None = None,
                  libraries: Libraries | None = None) -> LoadResult:
    """`loaded` (the same object) with the problems and warnings of its SQL scripts added: a
    refused script makes its deployment invalid, so its running job is left as it is."""
    checked = check_sql(loaded, read, checker, cache_dir, libraries)
    loaded.problems.extend(checked.problems)
    loaded.warnings.extend(checked.warnings)
    return loaded
