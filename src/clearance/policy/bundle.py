"""Policy bundles: canonical bytes, SHA-256 digest, optional Ed25519 signature.

The canonical bytes are the RFC 8785 (JCS) serialisation of::

    {"format": "clearance.policy/1", "source": <source name>,
     "document": <the parsed policy as plain JSON>,
     "lines": {"rules[3]": 42, "tools.transfer_funds": 12, ...}}

Why the parsed document and not the YAML text: comments, quoting, indentation and key order do
not change what a policy means, so they do not change its digest; any change of meaning does. The
archived bytes are plain JSON, so replaying an old decision never depends on how a YAML parser
reads old text. Why ``source`` and ``lines``: a verdict cites the ``file:line`` of the rule that
decided, and replay must reproduce the verdict exactly, so the few lines a verdict can cite (rules,
tools, environments, the default) are part of what the digest covers - moving a rule to another
line is a new version, editing a comment is not.

``Bundle.from_bytes`` accepts only bytes that are already canonical, recompiles them, and so
yields the same digest and the same verdicts as the bundle that was archived.

The signature is Ed25519 over ``b"clearance.policy.bundle/1\\n" + <digest text>``: a fixed
domain-separation prefix, so a bundle signature can never be mistaken for a receipt or checkpoint
signature made with the same key.

::

    >>> bundle = load_policy(Path("policy.yaml"))  # doctest: +SKIP
    >>> signed = bundle.sign(private_key)  # doctest: +SKIP
    >>> Bundle.from_bytes(signed.to_bytes(), signature=signed.signature).verify_signature(
    ...     public_key)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clearance.errors import Location, PolicyError
from clearance.formats.canonical import canonical_bytes, sha256_digest
from clearance.policy.compile import CompiledPolicy, compile_tree, location_keys

BUNDLE_FORMAT = "clearance.policy/1"
_SIGNATURE_CONTEXT = b"clearance.policy.bundle/1\n"


class BundleSignatureError(PolicyError):
    """A bundle's signature is missing or does not verify under the given key."""

    code = "policy_signature_invalid"


@dataclass(frozen=True)
class Bundle:
    """A loaded policy: what it compiles to, the bytes it is archived as, and their digest."""

    digest: str
    canonical_bytes: bytes
    source_name: str
    compiled: CompiledPolicy
    signature: bytes | None = None

    def to_bytes(self) -> bytes:
        """The canonical bytes to archive (the signature travels beside them)."""
        return self.canonical_bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, signature: bytes | None = None) -> Bundle:
        """Recompile an archived bundle; raise ``PolicyError`` unless ``data`` is canonical."""
        try:
            envelope = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constants,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise PolicyError(f"bundle bytes are not JSON: {exc}") from None
        if not isinstance(envelope, dict) or envelope.get("format") != BUNDLE_FORMAT:
            raise PolicyError(
                "bundle bytes are not a policy bundle",
                hint=f"expected `format` `{BUNDLE_FORMAT}`",
            )
        if set(envelope) != {"format", "source", "document", "lines"}:
            raise PolicyError("bundle has unexpected or missing keys")
        source, document, lines = envelope["source"], envelope["document"], envelope["lines"]
        if (
            not isinstance(source, str)
            or not isinstance(document, dict)
            or not isinstance(lines, dict)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in lines.values())
        ):
            raise PolicyError("bundle fields have the wrong types")
        bundle = bundle_from_tree(document, lines=lines, source_name=source)
        if bundle.canonical_bytes != data:
            raise PolicyError(
                "bundle bytes are not in canonical form",
                hint="archive `Bundle.to_bytes()` unchanged",
            )
        return replace(bundle, signature=signature)

    def sign(self, private_key: Ed25519PrivateKey) -> Bundle:
        """A copy of this bundle carrying an Ed25519 signature over its digest."""
        return replace(self, signature=private_key.sign(self._signed_message()))

    def verify_signature(self, public_key: Ed25519PublicKey) -> Bundle:
        """Return this bundle if its signature verifies under ``public_key``; raise otherwise."""
        if self.signature is None:
            raise BundleSignatureError(
                f"policy bundle `{self.digest}` is not signed",
                location=Location(self.source_name),
            )
        try:
            public_key.verify(self.signature, self._signed_message())
        except InvalidSignature:
            raise BundleSignatureError(
                f"the signature of policy bundle `{self.digest}` does not verify",
                location=Location(self.source_name),
                hint="was it signed with another key, or the bundle changed after signing?",
            ) from None
        return self

    def _signed_message(self) -> bytes:
        return _SIGNATURE_CONTEXT + self.digest.encode("ascii")


def bundle_from_tree(
    tree: Mapping[str, Any], *, lines: Mapping[str, int], source_name: str
) -> Bundle:
    """Compile a parsed policy and wrap it with its canonical bytes and digest."""
    compiled = compile_tree(tree, lines=lines, source_name=source_name)
    data = canonical_bytes(
        {
            "format": BUNDLE_FORMAT,
            "source": source_name,
            "document": tree,
            "lines": location_keys(lines),
        }
    )
    return Bundle(
        digest=sha256_digest(data),
        canonical_bytes=data,
        source_name=source_name,
        compiled=compiled,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key `{key}`")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"`{name}` is not JSON")
