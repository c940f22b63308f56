"""The conformance kit (`opik-runners conformance`): Opik's runner protocol checked in both
directions. `server` runs the shared scenarios (`scenarios/`, by area) against any server that
speaks Opik's runner API, through its public API only, and reports what differs from a profile
of expectations (`profiles`: Opik's behaviour, or this server's documented departures).
`runner` grades a runner client: it serves it from a server of its own and reads what the client
did from the request journal.

Rule: like client/, it speaks HTTP only, so it checks a real Opik as well as this server: it
imports nothing of the server, only `opik_runners.protocol`, the package's clients (client/) and
the standard library. The project's own test suite runs the same scenarios against this server.
"""
