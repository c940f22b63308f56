"""The store: the tables (`models`), the named statements compiled once per backend
(`statements`), the two backends behind one interface (`backend`, `sqlite`, `postgres`),
the wake-ups that end long polls (`wakeups`), the database's lifecycle (`db`) and the
schema's migrations (`migrations`).

Rule: the store knows no API rule, no HTTP and no Flask. It imports nothing of the package
above it: only the foundation modules at the top (`settings`, `errors`, `clock`, `metrics`,
`protocol`). Whatever must stop and start with the database (the control plane's threads)
registers itself with `db`, rather than being imported by it.
"""
