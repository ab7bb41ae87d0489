"""Standalone verifier of clearance audit evidence (AUDIT.md 3.8).

Depends only on ``clearance.formats``, the standard library, ``cryptography`` and ``rfc8785``, so
an auditor can run it without installing or trusting the gate (``orjson``, when installed, makes
it faster and changes no finding). ``log --jobs N`` checks entries in N worker processes::

    python -m clearance.audit.verify --key "$VKEY" log .clearance --state verify-state.json
    python -m clearance.audit.verify --key "$VKEY" log big-store.db --jobs 4
    python -m clearance.audit.verify --key "$VKEY" receipt r.json --proof p.tlog-proof

In Python::

    >>> from clearance.audit.verify.verify import verify_log
    >>> report = verify_log("clearance.db", keys)     # doctest: +SKIP
    >>> report.exit_code                              # doctest: +SKIP
"""
