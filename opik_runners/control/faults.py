"""Fault injection (/_admin/faults): rules that make matching requests fail on purpose, so
a client's retries can be tested: an error status, a delay, a dropped connection, or a
long poll held and answered empty.

Rules live in the database and every process keeps a copy (control.py), so a rule
applies across workers and instances as soon as it is added. What each match draws is
counted in the database: the n-th matching request, whichever worker serves it, fires
or not by the rule's seed and n, so a seeded run is repeatable; and a rule with `times`
fires exactly that many times between all of them, then retires.
"""
import fnmatch
import logging
import random

from .. import clock
from . import shared as control
from ..errors import failure
from ..store.models import FaultRule, database
from ..store.statements import Statement

log = logging.getLogger(__name__)

MATCHED = Statement(
    "count fault match",
    lambda p: FaultRule.update(matched=FaultRule.matched + 1).where(FaultRule.id == p.id).returning(FaultRule.matched),
)
FIRED = Statement(
    "count fault fired",
    lambda p: FaultRule.update(fired=FaultRule.fired + 1)
    .where((FaultRule.id == p.id) & (FaultRule.times.is_null() | (FaultRule.fired < FaultRule.times)))
    .returning(FaultRule.fired, FaultRule.times),
)


def describe(row):
    """A rule as the admin API shows it."""
    return {
        "id": row["id"], **row["rule"], "probability": row["probability"], "seed": row["seed"], "times": row["times"],
        "matched": row["matched"], "fired": row["fired"],
        "active": row["times"] is None or row["fired"] < row["times"],
    }


def add_rule(rule, probability=1.0, seed=None, times=None):
    """Add a rule (the request it matches and what it does); every process applies it once
    this returns."""
    def write():
        return FaultRule.insert(
            rule=rule, probability=probability, seed=seed, times=times, created_at=clock.real_now_us()
        ).execute()

    rule_id = control.change(write)
    log.info("fault rule %s added: %s", rule_id, rule)
    return describe(FaultRule.select().where(FaultRule.id == rule_id).dicts().get())


def list_rules():
    return [describe(row) for row in FaultRule.select().order_by(FaultRule.id).dicts()]


def delete_rule(rule_id):
    if not control.change(lambda: FaultRule.delete().where(FaultRule.id == rule_id).execute()):
        raise failure(404, f"No fault rule {rule_id}")
    log.info("fault rule %s deleted", rule_id)


def clear():
    """Delete every rule (inside a control change, or wrapped in one)."""
    return FaultRule.delete().execute()


def matches(rule, method, path, operation, workspace):
    spec = rule["rule"]
    return (
        (not spec.get("method") or spec["method"].upper() == method)
        and (not spec.get("path") or fnmatch.fnmatchcase(path, spec["path"]))
        and (not spec.get("operation") or spec["operation"] == operation)
        and (not spec.get("workspace") or spec["workspace"] == workspace)
    )


def choose(method, path, operation, workspace):
    """The rule that fires for this request, if any (the first that matches and draws to fire)."""
    for rule in control.current.rules:
        if rule["times"] is not None and rule["fired"] >= rule["times"]:
            continue
        if not matches(rule, method, path, operation, workspace):
            continue
        if fires(rule):
            return rule
    return None


def fires(rule):
    """Count the match and draw; count the firing (refused once the rule has fired `times`)."""
    with database.atomic():
        matched = MATCHED.execute(id=rule["id"]).fetchall()
        if not matched:
            return False  # deleted meanwhile; this worker's copy is a moment behind
        ((n,),) = matched
        probability = rule["probability"]
        if probability < 1:
            draw = random.Random(f"{rule['seed']}:{n}").random() if rule["seed"] is not None else random.random()
            if draw >= probability:
                return False
        fired = FIRED.execute(id=rule["id"]).fetchall()
        if not fired:
            return False  # retired meanwhile, by another worker
        ((count, times),) = fired
        if times is not None and count >= times:
            control.bump("generation")  # every process drops it from its copy
            log.info("fault rule %s retired after firing %d times", rule["id"], count)
    return True
