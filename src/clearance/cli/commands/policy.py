"""``clearance policy lint|test|diff``: check a policy, run its test cases, compare two versions.

``policy test --coverage`` adds which rules no case exercised and which constraint edges no case
probed (``clearance.policy.coverage``).

Problems are raised as ``PolicyError`` and printed by ``clearance.cli.main`` as one line each
(``file:line:key: message (hint: ...)``) with a non-zero exit code. Failing test cases exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from clearance.policy.bundle import Bundle
from clearance.policy.cases import (
    CaseResult,
    LoadedCases,
    load_cases,
    run_cases,
    run_load_expectation,
)
from clearance.policy.coverage import Observed, coverage
from clearance.policy.diff import diff_cases
from clearance.policy.load import load_policy

app = typer.Typer(no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)


@app.callback()
def policy() -> None:
    """Lint, test and diff policies."""


@app.command()
def lint(
    files: Annotated[list[Path], typer.Argument(help="Policy files to check.")],
) -> None:
    """Load and compile each policy; print its digest, or every problem with file:line:key."""
    for path in files:
        bundle = load_policy(path)
        compiled = bundle.compiled
        _out.print(
            f"{path}: ok - {len(compiled.tools)} tools, {len(compiled.tasks)} tasks, "
            f"{len(compiled.rules)} rules, {bundle.digest}",
            markup=False,
        )


def _run(bundle: Bundle | None, cases: LoadedCases) -> list[CaseResult]:
    if cases.file.want_error is not None:
        return [run_load_expectation(cases)]
    if cases.file.policy is not None:
        bundle = load_policy(cases.file.policy, source_name=f"{cases.source_name}#policy")
    assert bundle is not None  # INVARIANT: `test` always passes the policy argument
    return run_cases(bundle, cases)


def _observed(results: list[CaseResult]) -> list[Observed]:
    return [
        Observed(r.request, r.verdict, r.matched)
        for r in results
        if r.request is not None and r.verdict is not None
    ]


@app.command("test")
def run_tests(
    policy_file: Annotated[Path, typer.Argument(metavar="POLICY", help="The policy to test.")],
    case_files: Annotated[list[Path], typer.Argument(metavar="CASES...", help="YAML case files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    with_coverage: Annotated[
        bool,
        typer.Option(
            "--coverage",
            help="Also report the rules no case exercised and the constraint edges never probed.",
        ),
    ] = False,
) -> None:
    """Run YAML test cases against a policy; exit 1 if any case fails (or states no expectation).

    A case file that embeds its own ``policy:`` is run against that policy instead (and does not
    count towards the coverage of POLICY). Coverage is a report; it does not change the exit code.
    """
    bundle = load_policy(policy_file)
    results: list[CaseResult] = []
    own: list[CaseResult] = []
    for path in case_files:
        loaded = load_cases(path)
        found = _run(bundle, loaded)
        results.extend(found)
        if loaded.file.policy is None and loaded.file.want_error is None:
            own.extend(found)
    failed = [r for r in results if not r.passed]
    report = coverage(bundle.compiled, _observed(own)) if with_coverage else None
    if as_json:
        body: dict[str, Any] = {
            "policy": bundle.digest,
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "results": [
                {
                    "name": r.name,
                    "location": r.location,
                    "passed": r.passed,
                    "outcome": r.verdict.outcome.value if r.verdict else None,
                    "rule": r.verdict.rule if r.verdict else None,
                    "failures": list(r.failures),
                }
                for r in results
            ],
        }
        if report is not None:
            body["coverage"] = report.to_json()
        _out.print_json(json.dumps(body))
    else:
        for result in failed:
            _out.print(
                f"FAIL {result.location}: {result.name}: {'; '.join(result.failures)}",
                markup=False,
            )
        for line in report.lines() if report is not None else ():
            _out.print(line, markup=False)
        _out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The policy in force.")],
    new: Annotated[Path, typer.Argument(help="The candidate policy.")],
    cases: Annotated[Path, typer.Option("--cases", help="YAML case file to replay.")],
) -> None:
    """List the cases whose outcome or deciding rule changes from OLD to NEW."""
    changes = diff_cases(load_policy(old), load_policy(new), load_cases(cases))
    for change in changes:
        _out.print(
            f"{change.location}: {change.name}: "
            f"{change.old.outcome.value} ({change.old.rule}) -> "
            f"{change.new.outcome.value} ({change.new.rule})",
            markup=False,
        )
    _out.print(f"{len(changes)} case(s) change", markup=False)
