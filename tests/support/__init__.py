"""What the tests share, a module for each thing; a test imports them as `tests.support.<module>`
(never by bare name, and nothing from conftest: test_test_support.py holds both), and
conftest.py hands out the fixtures built on them (`in_app`, `browser`, `make_app`, ...).

- in_app: the API through Flask's test client: the prefixes API and ROOT, InApp (the `in_app`
  fixture: a project, a pairing session, a paired runner, its agents, a job), a reaper cycle now
- contract: responses validated against the shared contract and admin-openapi.yaml; ContractClient
- data: what tests declare or write straight to the store: AGENT, a stuck running job, lapsed heartbeats
- databases: a fresh database per test (SQLite, or the PostgreSQL of TEST_DATABASE_URL); lock waits
- servers: real servers in a subprocess; pair_over_http, a runner paired over HTTP on one; HttpApi,
  a server's API over HTTP
- cli: the real `opik` CLI (and any process whose output a test reads as it comes), the agent file
  `opik endpoint` runs
- browser: Debian's Chromium through Playwright: launch, the CSP watch, screenshots, axe-core
- threads: client threads whose failures fail the test
- waiting: until a condition holds; a clock minute with room left
- examples: the README's and docs/' examples, collected and run as a reader copy-pastes them
  (tests/docs/test_examples.py; the markers are in its docstring)
- docs_images: which console screenshots the docs show, and their copy into docs/images/

The protocol's crypto and encodings (the activation HMAC, the link's fragment, the bridge key and
signatures) are opik_runners.protocol's: the tests keep no copy."""
import pathlib

# The checkout this suite is in.
REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
