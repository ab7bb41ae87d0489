"""The verifier command line: each command, --json, state files and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearance.audit.testing import decision_fields, sample_store
from clearance.audit.verify.verify import main

EXAMPLE = Path(__file__).parents[2] / "vectors" / "clearance" / "worked-example"
DEPLOYMENT = "clearance.example/audit+4e6f271a+AbiPvv2TdDXnrB+/lgwcqLt4Qtv4W7NbyveB4DhgwFxs"
WITNESS = "verifier.clearance.example/w1+bea20bfd+BNSo77I709PeRdF01x13j3zQdt4BDnaYWv662xD+zbB1"


def test_worked_example_receipt_with_proof_and_witness(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "receipt",
        str(EXAMPLE / "receipt-1.json"),
        "--proof",
        str(EXAMPLE / "entry-1.tlog-proof"),
        "--key",
        DEPLOYMENT,
        "--json",
    ]
    assert main([*args, "--key", WITNESS, "--at-least-witnesses", "1"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["exit"] == 0
    assert main([*args, "--at-least-witnesses", "1"]) == 3  # witness key not trusted: quorum unmet


def test_proof_command_and_entry_binding(tmp_path: Path) -> None:
    assert main(["proof", str(EXAMPLE / "entry-1.tlog-proof"), "--key", DEPLOYMENT]) == 0
    assert (
        main(
            [
                "receipt",
                str(EXAMPLE / "receipt-1.json"),
                "--entry",
                str(EXAMPLE / "entry-1.json"),
                "--key",
                DEPLOYMENT,
            ]
        )
        == 0
    )
    other = tmp_path / "entry.json"
    other.write_bytes((EXAMPLE / "entry-1.json").read_bytes().replace(b"PERMIT", b"DENY"))
    assert (
        main(
            ["receipt", str(EXAMPLE / "receipt-1.json"), "--entry", str(other), "--key", DEPLOYMENT]
        )
        == 1
    )


def test_policy_bundle_binding(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.write_bytes(b"not the bundle")
    assert (
        main(
            [
                "receipt",
                str(EXAMPLE / "receipt-1.json"),
                "--policy-bundle",
                str(bundle),
                "--key",
                DEPLOYMENT,
            ]
        )
        == 1
    )


def test_consistency_command(tmp_path: Path) -> None:
    store = sample_store(tmp_path / "d", entries=3)
    log, storage = store.open_log()
    old = log.checkpoint_now()
    assert old is not None
    log.append("decision", decision_fields(9), None)
    proof = log.consistency_proof(4)
    log.close()
    storage.close()
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "proof").write_text(proof)
    assert (
        main(["consistency", str(tmp_path / "old"), str(tmp_path / "proof"), "--key", store.vkey])
        == 0
    )
    (tmp_path / "proof").write_text(proof.replace("old 4", "old 3"))
    assert (
        main(["consistency", str(tmp_path / "old"), str(tmp_path / "proof"), "--key", store.vkey])
        == 2
    )


def test_log_state_is_written_and_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = sample_store(tmp_path / "d", entries=3)
    state = tmp_path / "state.json"
    assert main([str(tmp_path / "d"), "--key", store.vkey, "--state", str(state)]) == 0
    assert json.loads(state.read_text())["shards"][store.origin]["size"] == 4
    capsys.readouterr()
    assert (
        main(["log", str(tmp_path / "d"), "--key", store.vkey, "--state", str(state), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["entries_checked"] == 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["log", "x.db"],
        ["bogus-command-file", "--key", "not a key"],
        ["receipt", "missing.json", "--key", DEPLOYMENT],
    ],
)
def test_usage_and_input_errors_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2
