"""The package's clients of the API: a simulated runner (`simulate`), a real server for tests
(`testing.RunnerServer`), the pytest plugin, and the HTTP client they share.

Rule: they speak HTTP only, so they run against this server or a real Opik alike: they
import nothing of the server, only `opik_runners.protocol` (the wire protocol's constants
and crypto), the standard library and their HTTP library. The client could ship on its own.
"""
