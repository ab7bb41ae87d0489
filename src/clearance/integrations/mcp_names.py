"""How the gateway names what its downstream servers offer, to clients and to the gate.

Several downstream servers may offer a tool, a prompt or a resource URI of the same name, so the
gateway shows each under its server's namespace and maps it back to exactly one server:

=============  ==============================  =====================================================
offered        the client sees                 the gate decides
=============  ==============================  =====================================================
tool           ``bank__transfer``              tool ``bank__transfer``, action ``call``
prompt         ``bank__summary``               tool ``bank:prompts``, action ``get``, target the
                                               prompt's name, args ``{name, arguments}``
resource       ``clearance://bank/<its URI>``  tool ``bank:resources``, action ``read`` (or
                                               ``subscribe``), target the URI, args ``{uri}``
=============  ==============================  =====================================================

The gate's surfaces for prompts and resources carry a colon, which the ``<server>__<name>`` of a
tool never produces (server names cannot hold ``__``), so no downstream tool can be mistaken for
another server's resources. The server part of a resource URI is percent-encoded, so a server
name cannot smuggle a ``/``; a URI is split once, and the server it names is both the one the gate
decides for and the one the request is sent to::

    uri = resource_uri("bank", "bank://accounts/acc-1")  # clearance://bank/bank://accounts/acc-1
    split_resource_uri(uri)                              # ("bank", "bank://accounts/acc-1")
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, unquote

from clearance.errors import RequestError

SEPARATOR = "__"
URI_PREFIX = "clearance://"
Kind = Literal["resources", "prompts"]
RESOURCES: Kind = "resources"
PROMPTS: Kind = "prompts"
READ = "read"
SUBSCRIBE = "subscribe"
GET = "get"


def namespaced(server: str, name: str) -> str:
    """The name a client sees for ``server``'s tool or prompt ``name``."""
    return f"{server}{SEPARATOR}{name}"


def split_name(name: str) -> tuple[str, str]:
    """``(server, name on that server)`` of a namespaced tool or prompt name.

    A name without the separator gives an empty server, which no downstream has.
    """
    server, _, raw = name.partition(SEPARATOR)
    return (server, raw) if raw else ("", name)


def surface(server: str, kind: Kind) -> str:
    """The gate's tool name for ``server``'s resources or prompts (``bank:resources``)."""
    return f"{server}:{kind}"


def resource_uri(server: str, uri: str) -> str:
    """The URI a client sees for ``server``'s resource (or template) ``uri``."""
    return f"{URI_PREFIX}{quote(server, safe='')}/{uri}"


def split_resource_uri(uri: str) -> tuple[str, str]:
    """``(server, URI on that server)`` of a gateway resource URI.

    Raises:
        RequestError: ``uri`` is not one of the gateway's URIs (a downstream's own URI, or one
            without a server); nothing is read.
    """
    server, sep, raw = uri.removeprefix(URI_PREFIX).partition("/")
    if not uri.startswith(URI_PREFIX) or not sep or not server or not raw:
        raise RequestError(
            f"`{uri[:200]}` is not a resource URI of this gateway",
            hint=f"read the URIs `resources/list` returns: {URI_PREFIX}<server>/<uri>",
        )
    return unquote(server), raw
