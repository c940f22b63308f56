"""The service's rules: who owns what (`ownership`), projects, runners, jobs and their
listing, bridge commands, pairing, the trace sink, the long polls, the reaper's maintenance,
the figures `/metrics` shows, and Opik's fixed limits.

Rule: functions take the settings and the caller they need, raise `errors.ApiError`, and
know no Flask and no HTTP, so they run in tests, the command and the server alike. They may
import the store, the schemas and the foundation modules at the top; never the control
plane, the web layer or the clients.
"""
