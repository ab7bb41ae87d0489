"""Fuzzing the parsers that face hostile input: only their documented errors, never a PERMIT.

Targets and what each may raise (anything else fails the test):

* the policy loader on YAML built to hurt (anchors and aliases, tags, runaway nesting, huge
  numbers, binary bytes read from a file): a ``Bundle`` or ``PolicyError``. Plain random text and
  random YAML trees are fuzzed in ``tests/property/test_policy_load_fuzz.py``;
* the request parser on arbitrary JSON text with NaN, Infinity, huge numbers, escaped lone
  surrogates and deep nesting: a ``Request`` or ``ValidationError``; every parsed request is
  decided by a real gate without an internal error, and one for an unknown tool never PERMITs;
* the verifier's parsers on arbitrary bytes and on real evidence with bytes flipped, inserted and
  cut: entry headers (``EntryError``), signed notes (``NoteError``), checkpoints
  (``CheckpointError``/``NoteError``), receipts (``ReceiptError``), tlog-proofs
  (``ProofFileError``), and the verifier's command line, which must answer with an exit code.

200 inputs per target by default, 20,000 with ``--soak``; the counts are printed.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clearance.audit.log import AuditLog
from clearance.audit.sign import AuditKey
from clearance.audit.testing import DEPLOYMENT, ORIGIN, StepClock
from clearance.audit.verify.verify import main as verifier_main
from clearance.errors import PolicyError
from clearance.formats.canonical import request_digest
from clearance.formats.checkpoint import CheckpointError, verify_checkpoint
from clearance.formats.entry import EntryError, parse_header
from clearance.formats.note import NoteError, VerifierKey, parse_note
from clearance.formats.proof import ProofFileError, verify_inclusion_proof
from clearance.formats.receipt import ReceiptError, build_statement, verify_receipt
from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import Bundle, load_policy
from clearance.store.audit_sqlite import SQLiteAuditStorage

KEY = AuditKey(DEPLOYMENT, bytes(32))
VKEYS = [VerifierKey.parse(KEY.vkey)]


def _examples(soak: bool) -> int:
    return 20_000 if soak else 200


def _run(soak: bool, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> int:
    """Run ``check`` on ``strategy``'s examples; return how many inputs were executed."""
    executed = 0

    @settings(
        max_examples=_examples(soak),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal executed
        executed += 1
        check(value)

    run()
    return executed


# ------------------------------------------------------------------------- real evidence seeds


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real entry header, checkpoint, receipt and tlog-proof, signed with the test key."""
    folder = tmp_path_factory.mktemp("evidence")
    log = AuditLog(
        SQLiteAuditStorage(folder / "clearance.db"),
        KEY,
        ORIGIN,
        StepClock(datetime(2026, 3, 1, tzinfo=UTC)),
    )
    request = {
        "agent_id": "agent-7",
        "session_id": "ses_x",
        "tool": "payments.refund",
        "action": "call",
        "args": {"amount": 10},
        "target": None,
    }
    digest = request_digest(**request)  # type: ignore[arg-type]
    decision_id, policy = "01JDECISION0000000000000001", "sha256:" + "11" * 32
    fields: dict[str, object] = {
        "decision_id": decision_id,
        "request_digest": digest,
        "policy": policy,
        "outcome": "PERMIT",
        "rule": "r",
        "shadow": False,
    }
    entry = log.append("decision", fields, dict(request))
    statement = build_statement(
        log=entry.log,
        index=entry.index,
        leaf=entry.leaf_hash,
        time=entry.time,
        decision_id=decision_id,
        request_digest=digest,
        policy=policy,
        outcome="PERMIT",
        rule="r",
        shadow=False,
    )
    checkpoint = log.checkpoint_now()
    assert checkpoint is not None
    storage = SQLiteAuditStorage(folder / "clearance.db", readonly=True)
    header = storage.entries(ORIGIN, entry.index, entry.index + 1)[0][2]
    storage.close()
    assert header is not None
    out = {
        "header": header,
        "checkpoint": checkpoint,
        "receipt": json.dumps(KEY.sign_receipt(statement)).encode(),
        "proof": log.inclusion_proof(entry.index).encode(),
    }
    log.close()
    return out


def _mutants(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes replaced, inserted or cut; and wholly arbitrary bytes."""

    @st.composite
    def edit(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, max(len(data) - 1, 0)))
            how = draw(st.sampled_from(["flip", "insert", "cut"]))
            if how == "flip" and data:
                data[at] ^= draw(st.integers(1, 255))
            elif how == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[at : at + draw(st.integers(1, 16))]
        return bytes(data)

    return edit() | st.binary(max_size=512)


def _only(
    *allowed: type[BaseException],
) -> Callable[[Callable[[bytes], object]], Callable[[bytes], None]]:
    def wrap(parse: Callable[[bytes], object]) -> Callable[[bytes], None]:
        def check(data: bytes) -> None:
            with contextlib.suppress(*allowed):
                parse(data)

        return check

    return wrap


# ------------------------------------------------------------------------------ the verifier


def test_entry_header_parser(soak: bool, evidence: dict[str, bytes]) -> None:
    n = _run(soak, _mutants(evidence["header"]), _only(EntryError)(parse_header))
    print(f"fuzz parse_header: {n} inputs")


def test_signed_note_parser(soak: bool, evidence: dict[str, bytes]) -> None:
    n = _run(soak, _mutants(evidence["checkpoint"]), _only(NoteError)(parse_note))
    print(f"fuzz parse_note: {n} inputs")


def test_checkpoint_verifier(soak: bool, evidence: dict[str, bytes]) -> None:
    parse = _only(CheckpointError, NoteError)(lambda data: verify_checkpoint(data, VKEYS))
    n = _run(soak, _mutants(evidence["checkpoint"]), parse)
    print(f"fuzz verify_checkpoint: {n} inputs")


def test_receipt_verifier(soak: bool, evidence: dict[str, bytes]) -> None:
    original = evidence["receipt"]

    def check(data: bytes) -> None:
        try:
            statement = verify_receipt(data, VKEYS)
        except ReceiptError:
            return
        # Accepted bytes must still say what the genuine receipt says (JSON whitespace aside).
        assert statement == verify_receipt(original, VKEYS)

    n = _run(soak, _mutants(original), check)
    print(f"fuzz verify_receipt: {n} inputs")


def test_inclusion_proof_verifier(soak: bool, evidence: dict[str, bytes]) -> None:
    parse = _only(ProofFileError)(lambda data: verify_inclusion_proof(data, VKEYS))
    n = _run(soak, _mutants(evidence["proof"]), parse)
    print(f"fuzz verify_inclusion_proof: {n} inputs")


def test_verifier_command_line_answers_with_an_exit_code(
    soak: bool, evidence: dict[str, bytes], tmp_path: Path
) -> None:
    target = tmp_path / "evidence"

    def check(case: tuple[str, bytes]) -> None:
        command, data = case
        target.write_bytes(data)
        code = verifier_main([command, str(target), "--key", KEY.vkey])
        assert code in (0, 1, 2, 3)

    kinds = st.sampled_from(["receipt", "proof", "bundle", "log"])
    cases = st.tuples(kinds, _mutants(evidence["receipt"]) | _mutants(evidence["proof"]))
    n = _run(soak, cases, check)
    print(f"fuzz clearance-verify command line: {n} inputs")


# -------------------------------------------------------------------------- the policy loader

_KEYS = ["version", "name", "tools", "tasks", "rules", "when", "outcome", "id", "tier", "<<"]


@st.composite
def hostile_yaml(draw: st.DrawFn) -> str:
    """YAML features a policy never needs, aimed at the loader."""
    key = draw(st.sampled_from(_KEYS))
    depth = draw(st.integers(1, 800))
    choices = [
        f"{key}: " + "[" * depth + "]" * draw(st.integers(0, depth)),
        f"{key}: " + "{a: " * depth + "1" + "}" * draw(st.integers(0, depth)),
        f"a: &a [x, x]\n{key}: [*a, *a, *a]\n",
        f"{key}: !!python/object/apply:os.system ['true']\n",
        f"{key}: !!binary aGVsbG8=\n",
        f"{key}: !custom {draw(st.text(max_size=20))!r}\n",
        f"{key}: {'9' * draw(st.integers(1, 6000))}\n",
        f"{key}: {draw(st.sampled_from(['.nan', '-.inf', '0x' + 'f' * 40, '1e999', '0o777']))}\n",
        "<<: {version: '1'}\n" + f"{key}: x\n",
        "--- \n" * draw(st.integers(2, 5)),
        f'{key}: "\\ud800"\n',
    ]
    return draw(st.sampled_from(choices))


def test_policy_loader_on_hostile_yaml(soak: bool) -> None:
    def check(text: str) -> None:
        try:
            bundle: Bundle | PolicyError = load_policy(text, source_name="fuzz.yaml")
        except PolicyError as exc:
            bundle = exc
        assert isinstance(bundle, Bundle) or "fuzz.yaml" in str(bundle)

    n = _run(soak, hostile_yaml(), check)
    print(f"fuzz load_policy (hostile YAML): {n} inputs")


def test_policy_loader_on_arbitrary_file_bytes(soak: bool, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    seed = (Path(__file__).resolve().parents[2] / "examples/financeapp/policy.yaml").read_bytes()

    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            message = load_policy(path).source_name
        except PolicyError as exc:
            message = str(exc)
        assert "policy.yaml" in message

    n = _run(soak, _mutants(seed), check)
    print(f"fuzz load_policy (file bytes): {n} inputs")


# ------------------------------------------------------------------------- the request parser

_NUMBERS = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "9007199254740993",
        "1" * 400,
        "-0",
        "5e-324",
    ]
)
_STRINGS = st.sampled_from(['"\\ud800"', '"\\udfff x"', '"ok"', '"\\u0000"', '"\\ud83d\\ude00"'])


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """A request body as an agent (or an attacker) might send it, hostile values included."""
    leaves = st.one_of(_NUMBERS, _STRINGS, st.sampled_from(["true", "null", "0", "[]", "{}"]))
    value = draw(leaves)
    for _ in range(draw(st.integers(0, 4))):
        value = draw(
            st.sampled_from([f"[{value}]", f'{{"k": {value}}}', f'{{"\\ud800": {value}}}'])
        )
    if draw(st.booleans()):
        depth = draw(st.integers(1, 2000))
        value = "[" * depth + value + "]" * depth
    tool = draw(st.sampled_from(['"read_account"', '"launch_rocket"', '"\\ud800"', "1", "null"]))
    return (
        '{"agent_id": "fuzz", "session_id": "SESSION", "tool": '
        + tool
        + f', "args": {{"account_id": "ACC-100001", "x": {value}}}}}'
    )


def test_request_parser_and_gate_on_hostile_json(soak: bool, gate: Gate) -> None:
    session = gate.open_session(agent_id="fuzz", task="balance_check", environment="staging")

    def check(text: str) -> None:
        body = text.replace("SESSION", session.session_id)
        try:
            request = Request.model_validate_json(body)
        except ValidationError:
            return
        decision = gate.decide(request)
        assert decision.rule != "error", decision.reason
        if request.tool not in ("read_account",):
            assert decision.outcome is not Outcome.PERMIT

    n = _run(soak, json_texts() | st.text(max_size=200), check)
    print(f"fuzz Request.model_validate_json + Gate.decide: {n} inputs")


def test_request_from_python_values(soak: bool, gate: Gate) -> None:
    session = gate.open_session(agent_id="fuzz", task="balance_check", environment="staging")
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
        ),
        max_leaves=10,
    )

    def check(value: Any) -> None:
        try:
            request = Request(
                agent_id="fuzz",
                session_id=session.session_id,
                tool="read_account",
                args={"account_id": "ACC-100001", "x": value},
            )
        except ValidationError as exc:
            refused = str(exc)
        else:
            assert gate.decide(request).rule != "error"
            return
        assert "`args" in refused

    n = _run(soak, values, check)
    print(f"fuzz Request(args=python values) + Gate.decide: {n} inputs")


def test_atheris_on_the_verifier_parsers(
    soak: bool, evidence: dict[str, bytes], tmp_path: Path
) -> None:
    """Soak only: coverage-guided fuzzing, seeded with real evidence, in its own process."""
    if not soak:
        pytest.skip("atheris runs in soak mode only (--soak or CLEARANCE_SOAK=1)")
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for selector, name in enumerate(["header", "checkpoint", "checkpoint", "receipt", "proof"]):
        (corpus / f"{selector}-{name}").write_bytes(bytes([selector]) + evidence[name])
    harness = Path(__file__).with_name("_atheris_verifier.py")
    result = subprocess.run(
        [sys.executable, str(harness), "-runs=500000", "-max_len=8192", str(corpus)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    done = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
    print(f"atheris on the verifier parsers: {done[-1] if done else result.stderr[-200:]}")
