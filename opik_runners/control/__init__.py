"""The control plane for tests and local development (served at /_admin/ by `web.admin`):
the state every worker and instance shares (`shared`: the clock offset, the fault rules, the
reset count), the request journal, fault injection, reset, state documents (export, seed,
wipe) and the Pact provider states.

Rule: it may use the domain, the schemas, the store and the foundation modules; never
Flask, the web layer or the clients. Nothing below it imports it.
"""
