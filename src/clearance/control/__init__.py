"""Stopping agents: kill switch, drains, circuit breakers, monitoring and alerts.

One module per job; ``plane.ControlPlane`` wires them for a gate:

* ``killswitch``: halts, drains and breaker trips in the store, checked first on every decision;
* ``drain``: the graceful stop's rules; ``scope`` and ``operator``: what a stop covers, who may act;
* ``breakers`` and ``baseline``: automatic pauses when behaviour departs from what was learned;
* ``monitor``: outcome-shift and gate-health alerts; ``alerts``: deduplicated, rate-limited sinks;
* ``metrics``: Prometheus series (needs ``prometheus-client``);
* ``drill``: end-to-end kill-switch drills and the readiness doctor.

Nothing here imports the gate: the gate's extension points are protocols, which these classes
satisfy by shape.
"""
