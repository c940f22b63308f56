"""The control plane's reset (POST /_admin/reset): back to an empty server, for every worker
and instance at once, while long polls are held (they answer, empty)."""
import logging

from . import faults, journal
from . import shared as control
from .state.wipe import wipe

log = logging.getLogger(__name__)


def reset(workspace=None):
    """Wipe every runner, job, log, bridge command, pairing session, project, trace, journal
    entry and fault rule, put the clock back to real time, and end every held long poll (with
    its empty answer); or wipe one workspace's data and journal entries only (the rules and the
    clock are everyone's, and other workspaces' polls go on: a wiped runner's poll answers
    empty at its timeout)."""

    def write():
        removed = wipe(workspace)
        journal.clear(workspace)
        if workspace is None:
            faults.clear()
            control.zero_clock()
            control.count_reset()
        return removed

    control.flush_journals()  # entries of requests answered before the reset go with it
    removed = control.change(write)  # logged once committed: change() may run write() again
    log.info("reset %s (%d runner%s removed)", "everything" if workspace is None else f"workspace {workspace}", removed,
             "" if removed == 1 else "s")
