"""Benchmark of ``clearance.policy.evaluate`` against a plain-Python baseline, Cedar and Rego.

Run: ``python bench/decide.py [--rounds N]``. Needs the ``bench`` dependency group for the
comparison engines (cedarpy, opa-eval for regorus, and optionally the OPA Go bindings installed with
``--no-deps --ignore-requires-python``); missing engines are skipped with a note.

The workload is the FinanceApp policy padded to ~100 rules (30 extra tools with 3 rules each, plus
the example's 13) and a fixed, seeded mix of 1,000 requests over every outcome. Each engine decides
every request; the figures are per decision and include turning the Python request into the
engine's input. Every engine must agree with ``evaluate`` on the outcome and deciding rule of
every request, or the run fails.

``Gate.decide()`` is measured on the same policy and mix (the requests policy does not send to
approval), on the embedded SQLite store without audit: session lookup, idempotency, evaluation
and the decision record, all of a decision but its evidence. It must agree with ``evaluate()``.

How the comparison engines are used, so the comparison is fair to them:

* the tool inventory, task scope, parameter schema and environment tiers are checked by the same
  Python code (``prelude``) for every non-clearance engine - Cedar has no regular expressions and
  no floats, so schema checks belong to the application there;
* each engine then computes the *set* of matching rules in one call (Cedar: every rule is a
  ``permit`` and the diagnostics name the satisfied ones; Rego: a partial set ``matched``), and
  the same Python ``combine`` picks DENY > APPROVAL > PERMIT, first in policy order;
* values Cedar cannot compute (URL host, case-insensitive SQL regexes, amounts as integer cents)
  are derived in Python during input conversion, which is timed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from clearance.gate.gate import Gate
from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import Bundle, evaluate, load_policy
from clearance.policy.compile import CompiledPolicy
from clearance.policy.hooks import url_host
from clearance.store import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "financeapp" / "policy.yaml"
PAD_TOOLS = 30
Decision = tuple[str, str]
Engine = Callable[[Request, SessionFacts], Decision]

_SELECT = re.compile(r"(?i)^\s*select\s")
_SCHEMA = re.compile(r"(?i)\b(drop|truncate|alter|grant)\b")


# --------------------------------------------------------------------------- the padded policy


def padded_policy_text() -> str:
    """FinanceApp plus PAD_TOOLS tools, each with a permit, an approval and a deny rule."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for i in range(PAD_TOOLS):
        name = f"pad_{i:02d}"
        doc["tools"][name] = {
            "tier": "write-limited",
            "params": {"n": {"type": "integer", "required": True, "min": 0, "max": 1000}},
        }
        doc["rules"] += [
            {"id": f"{name}-small", "tools": [name], "when": "args.n < 10", "outcome": "permit"},
            {
                "id": f"{name}-medium",
                "tools": [name],
                "when": "args.n >= 10 && args.n < 100",
                "outcome": "approval",
            },
            {"id": f"{name}-large", "tools": [name], "when": "args.n >= 100", "outcome": "deny"},
        ]
    doc["tasks"]["padded"] = {"tools": ["pad_*"]}
    return yaml.safe_dump(doc, sort_keys=False)


# ------------------------------------------------------------------------------ the workload


def workload(count: int = 1000, seed: int = 7) -> list[tuple[Request, SessionFacts]]:
    """A fixed mix over every outcome and rule of the padded policy."""
    rng = random.Random(seed)
    payees = ["ACC-100001", "ACC-100002", "ACC-300042", "ACC-999999", "ACC-123456"]
    hosts = [
        "api.exchangerates.example",
        "rates.ecb.example",
        "evil.example",
        "api.exchangerates.example.evil.com",
        "api.exchangerates.example@evil.com",
    ]
    queries = [
        ("reporting", "SELECT * FROM t"),
        ("ledger", "update t set a = 1"),
        ("ledger", "drop table t"),
        ("reporting", "  select 1"),
    ]
    out = []
    for index in range(count):
        kind = index % 10
        env = rng.choice(["staging", "staging", "production"])
        taint = ("fetch_url",) if rng.random() < 0.2 else ()
        if kind in (0, 1, 2):
            task, tool = "transfer", "transfer_funds"
            args: dict[str, Any] = {
                "from_account": "ACC-000001",
                "to_account": rng.choice(payees),
                "amount": rng.choice([5, 250.5, 999.99, 1000, 1500, 20000, 0.001]),
                "memo": "invoice",
            }
        elif kind == 3:
            task, tool = rng.choice(["balance_check", "transfer", "report"]), "read_account"
            args = {"account_id": rng.choice(["ACC-000001", "ACC-1"])}
        elif kind == 4:
            task, tool = "report", "fetch_url"
            args = {"url": f"https://{rng.choice(hosts)}/v1/latest"}
        elif kind == 5:
            task, tool = "notify", "send_email"
            args = {
                "recipient": rng.choice(["bob@financeapp.example", "eve@evil.example"]),
                "subject": "balance",
                "body": "hello",
            }
        elif kind == 6:
            task, tool = "maintenance", rng.choice(["execute_sql", "delete_records"])
            if tool == "execute_sql":
                database, query = rng.choice(queries)
                args = {"database": database, "query": query}
            else:
                args = {"table": "payees", "ids": [1, 2]}
        elif kind == 7:
            task, tool = "balance_check", "transfer_funds"  # injected: out of scope
            args = {"from_account": "ACC-000001", "to_account": "ACC-666666", "amount": 9500}
        else:
            task, tool = "padded", f"pad_{rng.randrange(PAD_TOOLS):02d}"
            args = {"n": rng.choice([1, 50, 500])}
        out.append(
            (
                Request(agent_id="financeapp-1", session_id="ses-1", tool=tool, args=args),
                SessionFacts(task=task, environment=env, taint=taint),
            )
        )
    return out


# ---------------------------------------------------- shared prelude and combine (non-clearance)


class RuleTable:
    """Rule ids in policy order with their outcomes, from the compiled policy."""

    def __init__(self, compiled: CompiledPolicy) -> None:
        self.order = {rule.id: i for i, rule in enumerate(compiled.rules)}
        self.outcome = {rule.id: rule.outcome.value for rule in compiled.rules}
        self.compiled = compiled

    def prelude(self, request: Request, facts: SessionFacts) -> Decision | str | None:
        """The checks every engine shares: a final decision, or the env approval rule, or None."""
        tool = self.compiled.tools.get(request.tool)
        if tool is None:
            return ("SILENCE", "unknown-tool")
        granted = self.compiled.tasks.get(facts.task)
        if granted is None or request.tool not in granted:
            return ("DENY", "scope")
        if tool.args.check(request.args) is not None:
            return ("DENY", "constraint")
        env = self.compiled.environments[facts.environment.value]
        return (
            f"environment:{facts.environment.value}"
            if tool.spec.tier in env.approval_tiers
            else None
        )

    def combine(self, matched: Iterable[str], env_rule: str | None) -> Decision:
        ids = sorted(matched, key=self.order.__getitem__)
        for outcome in ("DENY", "APPROVAL", "PERMIT"):
            for rule in ids:
                if self.outcome[rule] == outcome:
                    return (outcome, rule)
            if outcome == "APPROVAL" and env_rule is not None:
                return (outcome, env_rule)
        return ("DENY", "default")


def derived(request: Request) -> dict[str, Any]:
    """Values some engines cannot compute themselves."""
    args = request.args
    query = args.get("query", "")
    return {
        "url_host": url_host(args.get("url", "")),
        "sql_select": bool(_SELECT.search(query)),
        "sql_schema": bool(_SCHEMA.search(query)),
        "amount_cents": round(float(args.get("amount", 0)) * 100),
    }


# ------------------------------------------------------------------------------------ engines


def clearance_engine(compiled: CompiledPolicy) -> Engine:
    def decide(request: Request, facts: SessionFacts) -> Decision:
        verdict = evaluate(compiled, request, facts)
        return (verdict.outcome.value, verdict.rule)

    return decide


def python_engine(table: RuleTable, data: dict[str, list[str]]) -> Engine:
    """The same rules written by hand as Python predicates, indexed by tool."""
    payees = frozenset(data["known_payees"])
    domains = frozenset(data["allowed_domains"])
    select, schema = _SELECT, _SCHEMA
    rules: dict[str, list[tuple[str, Callable[[dict[str, Any], SessionFacts], bool]]]] = {
        "read_account": [("read-accounts", lambda a, s: True)],
        "fetch_url": [
            ("fetch-allowlisted", lambda a, s: url_host(a["url"]) in domains),
            ("fetch-elsewhere", lambda a, s: url_host(a["url"]) not in domains),
        ],
        "transfer_funds": [
            (
                "small-transfer-known-payee",
                lambda a, s: a["amount"] <= 1000 and a["to_account"] in payees,
            ),
            ("large-transfer", lambda a, s: a["amount"] > 1000),
            ("unknown-payee", lambda a, s: a["to_account"] not in payees),
            ("transfer-after-untrusted-content", lambda a, s: bool(s.taint)),
        ],
        "send_email": [
            ("internal-email", lambda a, s: a["recipient"].endswith("@financeapp.example")),
            ("external-email", lambda a, s: not a["recipient"].endswith("@financeapp.example")),
        ],
        "execute_sql": [
            (
                "sql-select-reporting",
                lambda a, s: (
                    s.environment.value == "staging"
                    and a["database"] == "reporting"
                    and bool(select.search(a["query"]))
                ),
            ),
            ("sql-schema-change", lambda a, s: bool(schema.search(a["query"]))),
            (
                "sql-other",
                lambda a, s: not (a["database"] == "reporting" and bool(select.search(a["query"]))),
            ),
        ],
        "delete_records": [("never-delete", lambda a, s: True)],
    }
    for i in range(PAD_TOOLS):
        name = f"pad_{i:02d}"
        rules[name] = [
            (f"{name}-small", lambda a, s: a["n"] < 10),
            (f"{name}-medium", lambda a, s: 10 <= a["n"] < 100),
            (f"{name}-large", lambda a, s: a["n"] >= 100),
        ]

    def decide(request: Request, facts: SessionFacts) -> Decision:
        early = table.prelude(request, facts)
        if isinstance(early, tuple):
            return early
        matched = [rid for rid, test in rules[request.tool] if test(request.args, facts)]
        return table.combine(matched, early)

    return decide


def _cedar_when(rule_id: str, data: dict[str, list[str]]) -> str:
    payees = json.dumps(data["known_payees"])
    domains = json.dumps(data["allowed_domains"])
    conditions = {
        "read-accounts": "true",
        "fetch-allowlisted": f"{domains}.contains(context.d.url_host)",
        "fetch-elsewhere": f"!{domains}.contains(context.d.url_host)",
        "small-transfer-known-payee": f"context.d.amount_cents <= 100000 && {payees}.contains(context.args.to_account)",
        "large-transfer": "context.d.amount_cents > 100000",
        "unknown-payee": f"!{payees}.contains(context.args.to_account)",
        "transfer-after-untrusted-content": "context.session.tainted",
        "internal-email": 'context.args.recipient like "*@financeapp.example"',
        "external-email": '!(context.args.recipient like "*@financeapp.example")',
        "sql-select-reporting": 'context.session.environment == "staging" && '
        'context.args.database == "reporting" && context.d.sql_select',
        "sql-schema-change": "context.d.sql_schema",
        "sql-other": '!(context.args.database == "reporting" && context.d.sql_select)',
        "never-delete": "true",
    }
    if rule_id in conditions:
        return conditions[rule_id]
    size = rule_id.rsplit("-", 1)[1]
    return {
        "small": "context.args.n < 10",
        "medium": "context.args.n >= 10 && context.args.n < 100",
        "large": "context.args.n >= 100",
    }[size]


def _tool_of(rule_id: str, compiled: CompiledPolicy) -> str:
    return next(
        name
        for name, tool in compiled.tools.items()
        if any(r.id == rule_id for p in tool.plans.values() for r in p.rules)
    )


def cedar_engine(table: RuleTable, data: dict[str, list[str]]) -> Engine:
    import cedarpy

    ids = list(table.order)
    source = "\n".join(
        f'permit(principal, action, resource == Tool::"{_tool_of(rid, table.compiled)}") '
        f"when {{ {_cedar_when(rid, data)} }};"
        for rid in ids
    )
    policies = cedarpy.PolicySet.from_str(source)
    entities = cedarpy.Entities.from_json_str("[]")

    def decide(request: Request, facts: SessionFacts) -> Decision:
        early = table.prelude(request, facts)
        if isinstance(early, tuple):
            return early
        args = dict(request.args)
        args.pop("amount", None)  # Cedar has no floats: the amount travels as integer cents
        result = cedarpy.is_authorized(
            {
                "principal": {"type": "Agent", "id": request.agent_id},
                "action": {"type": "Action", "id": request.action},
                "resource": {"type": "Tool", "id": request.tool},
                "context": {
                    "args": args,
                    "session": {
                        "environment": facts.environment.value,
                        "tainted": bool(facts.taint),
                    },
                    "d": derived(request),
                },
            },
            policies,
            entities,
        )
        if result.diagnostics.errors:
            raise RuntimeError(f"cedar: {result.diagnostics.errors}")
        matched = [ids[int(p.removeprefix("policy"))] for p in result.diagnostics.reasons]
        return table.combine(matched, early)

    return decide


def _rego_source(table: RuleTable, data: dict[str, list[str]]) -> str:
    body = {
        "read-accounts": [],
        "fetch-allowlisted": ["input.d.url_host in domains"],
        "fetch-elsewhere": ["not input.d.url_host in domains"],
        "small-transfer-known-payee": [
            "input.args.amount <= 1000",
            "input.args.to_account in payees",
        ],
        "large-transfer": ["input.args.amount > 1000"],
        "unknown-payee": ["not input.args.to_account in payees"],
        "transfer-after-untrusted-content": ["count(input.session.taint) > 0"],
        "internal-email": ['endswith(input.args.recipient, "@financeapp.example")'],
        "external-email": ['not endswith(input.args.recipient, "@financeapp.example")'],
        "sql-select-reporting": ['input.session.environment == "staging"', "reporting_select"],
        "sql-schema-change": [f"regex.match(`{_SCHEMA.pattern}`, input.args.query)"],
        "sql-other": ["not reporting_select"],
        "never-delete": [],
    }
    lines = [
        "package fin",
        "import rego.v1",
        f"payees := {_rego_set(data['known_payees'])}",
        f"domains := {_rego_set(data['allowed_domains'])}",
        "reporting_select if {",
        '  input.args.database == "reporting"',
        "  regex.match(`(?i)^\\s*select\\s`, input.args.query)",
        "}",
    ]
    for rid in table.order:
        tool = _tool_of(rid, table.compiled)
        if rid in body:
            conditions = body[rid]
        else:
            conditions = [
                {
                    "small": "input.args.n < 10",
                    "medium": "input.args.n >= 10; input.args.n < 100",
                    "large": "input.args.n >= 100",
                }[rid.rsplit("-", 1)[1]]
            ]
        tests = "; ".join([f'input.tool == "{tool}"', *conditions])
        lines.append(f'matched contains "{rid}" if {{ {tests} }}')
    return "\n".join(lines) + "\n"


def _rego_set(items: Iterable[str]) -> str:
    return "{" + ", ".join(json.dumps(i) for i in sorted(set(items))) + "}"


def _rego_input(request: Request, facts: SessionFacts) -> dict[str, Any]:
    return {
        "tool": request.tool,
        "args": request.args,
        "session": {"environment": facts.environment.value, "taint": list(facts.taint)},
        "d": {"url_host": url_host(request.args.get("url", ""))},
    }


def regorus_engine(table: RuleTable, data: dict[str, list[str]], workdir: Path) -> Engine:
    import opa_eval

    path = workdir / "fin.rego"
    path.write_text(_rego_source(table, data))
    engine = opa_eval.OpaEval(str(path), query="data.fin.matched")

    def decide(request: Request, facts: SessionFacts) -> Decision:
        early = table.prelude(request, facts)
        if isinstance(early, tuple):
            return early
        matched = engine.evaluate_parsed(json.dumps(_rego_input(request, facts)))
        return table.combine(matched, early)

    return decide


def opa_engine(table: RuleTable, data: dict[str, list[str]]) -> Engine:
    import opa_bindings

    engine = opa_bindings.OpaEngine()
    engine.add_policy("fin.rego", _rego_source(table, data))

    def decide(request: Request, facts: SessionFacts) -> Decision:
        early = table.prelude(request, facts)
        if isinstance(early, tuple):
            return early
        matched = engine.eval_document("fin.matched", _rego_input(request, facts))
        return table.combine(matched, early)

    return decide


def gate_engine(
    bundle: Bundle, requests: list[tuple[Request, SessionFacts]], workdir: Path
) -> Engine:
    """``Gate.decide()`` on the embedded SQLite store, without audit: one session per distinct
    (task, environment, taint) of the workload, opened and tainted through the store first."""
    gate = Gate(open_store(f"sqlite:///{workdir / 'gate.db'}"))
    gate.activate(bundle, by="bench")
    sessions: dict[tuple[str, str, tuple[str, ...]], str] = {}
    prepared: dict[int, Request] = {}
    for request, facts in requests:
        key = (facts.task, facts.environment.value, facts.taint)
        if key not in sessions:
            session = gate.open_session(
                agent_id=request.agent_id, task=facts.task, environment=facts.environment
            )
            if facts.taint:
                gate.store.add_taint(session.session_id, list(facts.taint), "2026-01-01T00:00:00Z")
            sessions[key] = session.session_id
        prepared[id(request)] = request.model_copy(update={"session_id": sessions[key]})

    def decide(request: Request, _facts: SessionFacts) -> Decision:
        decision = gate.decide(prepared[id(request)])
        return (decision.outcome.value, decision.rule)

    return decide


# ------------------------------------------------------------------------------------ running


def measure(
    engine: Engine, requests: list[tuple[Request, SessionFacts]], rounds: int
) -> tuple[list[Decision], list[int]]:
    decisions = [engine(r, f) for r, f in requests]  # warm-up and the answers to compare
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for request, facts in requests:
            start = clock()
            engine(request, facts)
            samples.append(clock() - start)
    return decisions, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    bundle = load_policy(padded_policy_text(), source_name="financeapp-padded.yaml")
    compiled = bundle.compiled
    table = RuleTable(compiled)
    data = {name: [str(v) for v in items] for name, items in compiled.data.items()}
    requests = workload()
    workdir = Path(tempfile.mkdtemp(prefix="clearance-bench-"))
    factories: list[tuple[str, Callable[[], Engine]]] = [
        ("clearance evaluate()", lambda: clearance_engine(compiled)),
        ("plain Python baseline", lambda: python_engine(table, data)),
        ("Cedar (cedarpy)", lambda: cedar_engine(table, data)),
        ("Rego (regorus via opa-eval)", lambda: regorus_engine(table, data, workdir)),
        ("Rego (OPA Go bindings)", lambda: opa_engine(table, data)),
    ]
    print(f"policy: {len(compiled.rules)} rules, {len(compiled.tools)} tools, {bundle.digest}")
    counts: dict[str, int] = {}
    reference: list[Decision] | None = None
    rows = []
    for name, factory in factories:
        try:
            engine = factory()
        except ImportError as exc:
            print(f"{name}: skipped ({exc.name} is not installed)")
            continue
        decisions, samples = measure(engine, requests, options.rounds)
        if reference is None:
            reference = decisions
            for outcome, _ in decisions:
                counts[outcome] = counts.get(outcome, 0) + 1
        mismatches = [
            (r[0].tool, r[0].args, want, got)
            for r, want, got in zip(requests, reference, decisions, strict=True)
            if want != got
        ]
        assert not mismatches, f"{name} disagrees: {mismatches[:3]}"
        samples.sort()
        p50 = samples[len(samples) // 2] / 1000
        p99 = samples[int(len(samples) * 0.99)] / 1000
        rate = len(samples) / (sum(samples) / 1e9)
        rows.append((name, p50, p99, rate, statistics.fmean(samples) / 1000))
    print(f"mix of {len(requests)} requests: {dict(sorted(counts.items()))}; all engines agree")
    # The gate answers APPROVAL by creating an approval request (another subsystem, with its own
    # limits on pending requests): its line covers the requests evaluate() does not send there.
    assert reference is not None
    direct = [
        r for r, (outcome, _) in zip(requests, reference, strict=True) if outcome != "APPROVAL"
    ]
    gate = gate_engine(bundle, direct, workdir)
    decisions, samples = measure(gate, direct, options.rounds)
    wanted = [clearance_engine(compiled)(r, f) for r, f in direct]
    assert decisions == wanted, "Gate.decide() disagrees with evaluate()"
    samples.sort()
    gate_row = (
        "clearance Gate.decide() [1]",
        samples[len(samples) // 2] / 1000,
        samples[int(len(samples) * 0.99)] / 1000,
        len(samples) / (sum(samples) / 1e9),
        statistics.fmean(samples) / 1000,
    )
    print(f"{'engine':32} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'decisions/s':>12}")
    for name, p50, p99, rate, mean in [*rows, gate_row]:
        print(f"{name:32} {p50:9.1f} {p99:9.1f} {mean:9.1f} {rate:12,.0f}")
    print(
        f"[1] SQLite store, no audit; the {len(direct)} requests evaluate() does not answer with "
        "APPROVAL, each in a session of its task, environment and taint"
    )
    ours = rows[0]
    others = rows[2:]
    if others:
        fastest = min(others, key=lambda r: r[1])
        print(
            f"evaluate() p50 is {fastest[1] / ours[1]:.1f}x lower than the fastest comparison "
            f"engine ({fastest[0]}); p99 {ours[2]:.1f} us"
        )
    assert Outcome.PERMIT.value in counts


if __name__ == "__main__":
    main()
