"""The web layer: the Opik API's blueprint (`api`), the control plane's (`admin`), the
console's pages (`console`), what keeps web pages from driving the server (`guard`), and
the request helpers they share (`messages`: one body and query loader, one `respond`, one
settings accessor).

Rule: thin views: parse with a schema, make one call into the domain or the control plane,
dump with a schema. Only this layer (and the app factory and serving at the top) imports
Flask or werkzeug. It may use every layer below it; nothing below imports it.
"""
