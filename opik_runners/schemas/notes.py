"""Notes for the request journal: what Opik accepts without a word but a client author
should know (a field it ignored, a deprecated field, a number taken as a string).

The schemas add notes as they load a body; the journal collects them for the request
in flight. With the journal off nothing collects, and `add` costs one context lookup."""
import contextvars

_collecting = contextvars.ContextVar("journal_notes", default=None)


def collect():
    """Start collecting this request's notes (in this thread or greenlet); the list they go to."""
    notes = []
    _collecting.set(notes)
    return notes


def stop():
    _collecting.set(None)


def collecting():
    return _collecting.get() is not None


def add(text):
    notes = _collecting.get()
    if notes is not None and text not in notes:
        notes.append(text)
