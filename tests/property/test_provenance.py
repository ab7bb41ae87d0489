"""Monotonicity of provenance and taint; delegation never widens grants."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.agents import effective_grants, grants_allow
from clearance.scan import Provenance

SOURCES = st.sampled_from(
    ["instruction", "policy-data", "trusted-tool:db", "untrusted:web", "untrusted:agent:a"]
)
SCALARS = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, max_value=10**9, min_value=-(10**9)
    ),
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(SOURCES, JSON), min_size=1, max_size=8), st.lists(SCALARS, max_size=10))
def test_sources_and_taint_never_shrink(
    records: list[tuple[str, object]], probes: list[str | int | Decimal]
) -> None:
    prov = Provenance()
    seen: dict[str | int | Decimal, frozenset[str]] = {}
    taint: frozenset[str] = frozenset()
    for source, content in records:
        prov.record(source, content)
        assert prov.taint >= taint
        taint = prov.taint
        for probe in [*probes, *seen]:
            now = prov.sources_of(probe)
            assert now >= seen.get(probe, frozenset())
            seen[probe] = now
    assert taint == {s for s, _ in records if s.startswith("untrusted:")}


@settings(max_examples=150, deadline=None)
@given(SOURCES, st.text(min_size=1, max_size=40).filter(lambda t: t.strip()))
def test_recorded_strings_are_found_under_their_source(source: str, text: str) -> None:
    prov = Provenance()
    prov.record(source, {"k": [text]})
    assert source in prov.sources_of(text)


TOOLS = st.sampled_from(["read", "write", "deploy", "delete", "*"])


@given(
    st.lists(st.frozensets(TOOLS, max_size=4), min_size=1, max_size=6),
    st.sampled_from(["read", "write", "deploy", "delete"]),
)
def test_chain_grant_is_never_larger_than_any_member(
    chain: list[frozenset[str]], tool: str
) -> None:
    result = effective_grants(chain)
    if grants_allow(result, tool):
        assert all(grants_allow(member, tool) for member in chain)
    for member in chain:
        if "*" not in member:
            assert result <= member
