"""State documents: the whole store as one JSON document, and back: `export`, `seed` (the
load) and `wipe`, with the document's schema in `document`.

The control plane serves these (GET/POST /_admin/state, POST /_admin/reset), `opik-runners
seed` loads documents from a file, and the Pact provider states (control/provider_states.py) are
documents built in code. The format, version 1 (docs/reference/state-documents.md shows an example):

    {"version": 1, "workspace": "...",            # optional: every item's workspace
     "projects": [...], "runners": [...], "jobs": [...], "pairing_sessions": [...],
     "bridge_commands": [...], "traces": [...], "spans": [...]}

Each item holds its table's columns under their API names; times are ISO-8601 UTC
(`2026-05-01T12:00:00.000000Z`, microseconds kept), absent values are left out. A job
carries its log lines (`"logs": [{"stream", "text"}]`); what the store derives is not in
the document and is made again on load: a job's seq (its runners' jobs are numbered in
the order the document lists them, oldest first), a runner's job counters, each job's
rendered document. Detached runners (DELETE, evicted, purged) are exported too, with
`detached_at`, since their jobs stay readable to the reaper until they expire; loaded,
they stay invisible to callers. Bridge rate counters are not exported (they only count
the current minute), and neither is the control plane's journal or fault rules.

Loading is all or nothing (one transaction): a document that will not load is a
StateError naming the item and field (`runners[2].project_id: no such project`), and
nothing is written. Ids and times are kept when given and made when absent. A runner's
`project` (a name) finds the workspace's project of that name, or creates it; a
`project_id` must name a project of the document or the store. A runner's `status`
says what it should be: `connected` (the default) keeps a `heartbeat_expires_at` still
ahead, or makes it now + OPIK_RUNNER_HEARTBEAT_TTL; `disconnected` keeps one already
past, or makes it now. Jobs may also name runners already stored: they are numbered
after that runner's jobs.
"""
