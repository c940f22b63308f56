"""Marshmallow schemas: every request of the Opik API and the control plane is loaded
through one, every response dumped through one.

Rule: schemas know no Flask and no database: they import only the foundation modules at the
top (`errors`, `clock`, `protocol`). A value that will not load raises `errors.ApiError`
in the shape Opik answers it.
"""
