"""The gateway's resource URIs and names map back to exactly the server and name they came from.

A URI the gateway hands out splits into the server it was built for, whatever characters the
server name or the downstream URI hold; and no gate surface of one server equals another server's
surface or any namespaced tool name, so a policy entry can never mean two things.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearance.errors import ConfigError, RequestError
from clearance.integrations.mcp_downstream import load_upstreams
from clearance.integrations.mcp_names import (
    PROMPTS,
    RESOURCES,
    SEPARATOR,
    Kind,
    namespaced,
    resource_uri,
    split_name,
    split_resource_uri,
    surface,
)

# What the mcp.json loader accepts as a server name.
servers = st.text(min_size=1, max_size=20).filter(
    lambda s: SEPARATOR not in s and not s.endswith("_")
)
uris = st.text(min_size=1, max_size=60)


@given(servers, uris)
def test_a_resource_uri_splits_into_its_own_server_and_uri(server: str, uri: str) -> None:
    assert split_resource_uri(resource_uri(server, uri)) == (server, uri)


@given(servers, st.text(min_size=1, max_size=40))
def test_a_namespaced_name_splits_into_its_own_server_and_name(server: str, name: str) -> None:
    assert split_name(namespaced(server, name)) == (server, name)


kinds = st.sampled_from([RESOURCES, PROMPTS])


@given(servers, servers, kinds, kinds, st.text(max_size=30))
def test_a_surface_is_neither_another_servers_surface_nor_a_tool_name(
    server: str, other: str, kind: Kind, other_kind: Kind, tool: str
) -> None:
    same = surface(server, kind) == surface(other, other_kind)
    assert same == (server == other and kind == other_kind)
    assert surface(server, kind) != namespaced(other, tool)


def test_a_server_name_that_could_split_two_ways_is_refused(tmp_path: Path) -> None:
    """`a_` + `__` + `_b` would read as server `a`, tool `__b`: such a name is a config error."""
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"a_": {"command": "x"}}}), "utf-8")
    with pytest.raises(ConfigError, match="must not end with `_`"):
        load_upstreams(path, environ={})


@pytest.mark.parametrize(
    "uri",
    [
        "bank://accounts/acc-1",  # the downstream's own URI
        "clearance://bank",  # no URI after the server
        "clearance://bank/",  # an empty URI
        "clearance:///bank://accounts/acc-1",  # no server
        "CLEARANCE://bank/bank://x",  # another scheme spelling
        "",
    ],
)
def test_uris_that_are_not_the_gateways_are_refused(uri: str) -> None:
    with pytest.raises(RequestError, match="is not a resource URI of this gateway"):
        split_resource_uri(uri)
