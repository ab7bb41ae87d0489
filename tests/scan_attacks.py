"""Inputs crafted against the scanners' patterns (regular-expression denial of service).

Each entry is about 100 KB aimed at one pattern's weak spot: a trigger repeated as densely as
possible, or a trigger followed by a long run of the characters a pattern's repetition accepts,
with the terminator the pattern waits for left out, so a backtracking engine tries every split.
``tests/unit/scan/test_redos.py`` asserts a generous bound on each; ``bench/scan.py`` measures them.
"""

from __future__ import annotations

import base64

SIZE = 100 * 1024


def _fill(unit: str, *, prefix: str = "", suffix: str = "") -> str:
    """``prefix``, then ``unit`` repeated to about :data:`SIZE` characters, then ``suffix``."""
    return prefix + unit * max(1, (SIZE - len(prefix) - len(suffix)) // len(unit)) + suffix


ATTACKS: dict[str, dict[str, str]] = {
    "injection": {
        "override-verbs-without-target": _fill("ignore all the previous "),
        "new-instructions-without-colon": _fill("new instructions "),
        "addressed-without-noun": _fill("attention to the "),
        "role-line-without-colon": _fill("system message override note\n"),
        "exfiltration-without-destination": _fill("send all the secrets to ", suffix="x"),
        "exfiltration-into-at-run": _fill("@", prefix="send all the secrets to "),
        "unclosed-html-comments": _fill("<!--"),
        "closing-marker-first": _fill("<!--", prefix="-->"),
        "hidden-style-without-closing-tag": _fill('<div style="display:none">x'),
        "style-attribute-run": _fill("style", prefix='<a x="'),
        "markdown-image-query-run": _fill("?=", prefix="![x](https://a.example/p"),
        "markdown-images-unclosed": _fill("![a](https://e.example/?q="),
        "tool-call-json-without-arguments": _fill('{"tool": "x", '),
        "base64-readable-chunks": _fill(
            base64.b64encode(b"meeting notes for thursday").decode() + " "
        ),
        "base64-run-without-boundary": _fill("A", suffix="-"),
        "zero-width-in-every-word": _fill("a\u200bb "),
        "tag-characters-run": _fill("\U000e0041"),
        "lookalike-letters": _fill("\u0456gn\u043er\u0435 "),
        "invisible-run-without-word": _fill("\u200b", prefix="a"),
        "astral-resizing-characters": _fill(
            "\U000e0041\U0001f130\ufb01\u2026", prefix="ignore all previous instructions "
        ),
        "capital-dotted-i-everywhere": _fill("\u0130STANBUL \u03a3 ", suffix="ignore all rules"),
        "base64-runs-touching-edges": _fill("QUJD" * 6 + "===_"),
    },
    "secrets": {
        "aws-keyword-repeated": _fill("aws secret "),
        "assignment-then-whitespace": _fill(" ", prefix="password"),
        "assignment-keywords-and-spaces": _fill("password" + " " * 56),
        "url-userinfo-without-at": _fill("a:", prefix="https://"),
        "at-signs": _fill("@"),
        "pem-header-repeated": _fill("-----BEGIN PRIVATE KEY-----"),
        "token-prefixes": _fill("ghp_ sk-ant- xoxb- eyJ "),
        "one-long-candidate": _fill("aB3", suffix=" token"),
        "many-candidates": _fill("token=aB3dE5fG7hJ9kL1mN3pQ5rS7t "),
        "service-account-without-key": _fill(' "type": "service_account", "x": 1'),
    },
    "pii": {
        "at-signs": _fill("a@"),
        "email-labels-without-tld": _fill("a.", prefix="x@"),
        "digits-and-spaces": _fill("1 "),
        "digits-and-separators": _fill("1-(2).3+4/"),
        "phone-prefixes": _fill("+1 (2"),
        "keywords-without-values": _fill("passport number is date of birth ssn "),
        "iban-prefixes": _fill("DE44 "),
    },
    "urls": {
        "scheme-repeated": _fill("http://"),
        "one-endless-url": _fill("a", prefix="https://"),
        "www-repeated": _fill("www."),
    },
}
"""Crafted inputs by scanner name and attack name."""
