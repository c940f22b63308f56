"""An Opik-compatible local-runner server: the local-runner REST API of Opik, standalone.

`opik_runners.app.create_app()` builds the WSGI app; the `opik-runners` command
(`opik_runners.cli`) serves it, migrates its database, reaps and backs it up.
"""
__version__ = "1.1.0"
