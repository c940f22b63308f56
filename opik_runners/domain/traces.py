"""A trace sink: enough of Opik's tracing API for a job's trace to be stored and read back.

The endpoint child's `@opik.track` sends `POST traces/batch` and `spans/batch`; a
document written again (a batch retried, or a PATCH) is merged over what is stored.
"""
import logging

from ..errors import ApiError, failure
from ..store.models import Span, Trace, database
from .projects import create_project, retrieve_project

log = logging.getLogger(__name__)


def project_id_for(caller, name, cache):
    """Opik files traces under a project by name, creating it on first use."""
    if not name:
        return None
    if name not in cache:
        try:
            cache[name] = retrieve_project(caller, name).id
        except ApiError:
            try:
                cache[name] = create_project(caller, {"name": name}).id
            except ApiError:  # created meanwhile by a concurrent batch
                cache[name] = retrieve_project(caller, name).id
    return cache[name]


def store(model, caller, documents, **columns_of):
    """Upsert each document by id, merged over a stored one of the same workspace.

    Each row is made if missing, then read locked (PostgreSQL), so writes of one id at once
    merge one over the other: read unlocked, a batch and a PATCH of one trace sent at once kept
    only one's fields. Ids are taken in order, so two batches of the same ids never wait for
    each other's rows crosswise; a batch naming an id twice merges its documents in the order
    sent (the sort is stable)."""
    projects = {}
    with database.atomic():
        for document in sorted(documents, key=lambda d: str(d["id"])):
            model.insert(id=document["id"], workspace=caller.workspace, data={}).on_conflict_ignore().execute()
            row = database.lock_rows(model.select().where(model.id == document["id"])).get()
            if row.workspace != caller.workspace:
                raise failure(409, f"{model.__name__} {document['id']} belongs to another workspace")
            data = {**row.data, **document}
            values = {
                "data": data,
                "project_id": project_id_for(caller, data.get("project_name"), projects),
                **{name: pick(data) for name, pick in columns_of.items()},
            }
            model.update({getattr(model, name): value for name, value in values.items()}).where(
                model.id == document["id"]).execute()


def store_traces(caller, traces):
    store(Trace, caller, traces)
    log.info("stored %d traces", len(traces))


def store_spans(caller, spans):
    store(Span, caller, spans, trace_id=lambda data: data.get("trace_id"))
    log.info("stored %d spans", len(spans))


def get_trace(caller, trace_id):
    trace = Trace.get_or_none((Trace.id == trace_id) & (Trace.workspace == caller.workspace))
    if trace is None:
        raise failure(404, "Trace not found")
    return trace


def list_spans(caller, trace_id, page, size):
    query = Span.select().where(Span.workspace == caller.workspace)
    if trace_id is not None:
        query = query.where(Span.trace_id == trace_id)
    return query.count(), list(query.order_by(Span.id).paginate(page + 1, size))
