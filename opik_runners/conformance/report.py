"""What a conformance run shows: a table grouped by area (passed, differs, skipped with the
reason), and the same results as JUnit XML and JSON for CI. Both directions report through it:
the server's scenarios and a runner's checks are both Outcomes."""
import json
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .http import short

REFERENCE = "docs/opik-behaviour.md"  # where each departure a scenario shows is documented
SYMBOLS = {"passed": "ok", "differs": "DIFFERS", "failed": "FAILED", "skipped": "skipped"}


@dataclass
class Outcome:
    """One scenario or check: where it belongs, what it shows, how it went and why."""

    group: str
    name: str
    title: str
    outcome: str  # passed, differs (server scenarios), failed (runner checks) or skipped
    details: list = field(default_factory=list)  # lines: what differed, or the evidence
    reason: str = ""  # a skip's reason
    seconds: float = 0.0
    departure: str = None  # the docs/opik-behaviour.md anchor a scenario shows under profile opik

    @property
    def bad(self):
        return self.outcome in ("differs", "failed")


def from_scenario(result):
    details = []
    for difference in result.differences:
        details.append(f"{difference.what}: expected {short(difference.expected, 300)}, "
                       f"got {short(difference.got, 300)}")
        if difference.answer is not None:
            details.append(f"  request: {difference.answer.describe()}")
    return Outcome(result.scenario.area, result.scenario.name, result.scenario.title, result.outcome, details,
                   result.reason, result.seconds, result.scenario.departure)


class Progress:
    """One line rewritten in place on a terminal while the run goes on (nothing elsewhere)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()

    def __call__(self, done, total, label):
        if self.on:
            self.stream.write(f"\r\033[K[{done + 1}/{total}] {label}"[:200])
            self.stream.flush()

    def end(self):
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


def table(outcomes, heading, groups=None, evidence=False):
    """The readable report: a line per outcome, grouped; the details of each that went wrong (and,
    with `evidence`, of each that passed: a runner's scorecard)."""
    lines = [heading, ""]
    order = list(dict.fromkeys(groups or sorted({o.group for o in outcomes})))
    for group in order:
        mine = [o for o in outcomes if o.group == group]
        if not mine:
            continue
        lines.append(group)
        for o in mine:
            note = f" ({o.reason})" if o.outcome == "skipped" and o.reason else ""
            departure = f" [{REFERENCE}#{o.departure}]" if o.departure and o.bad else ""
            lines.append(f"  {SYMBOLS[o.outcome]:<8} {o.title}{note}{departure}")
            if o.bad or evidence and o.details:
                lines.extend(f"             {line}" for line in o.details)
        lines.append("")
    lines.append(summary(outcomes))
    return "\n".join(lines)


def summary(outcomes, seconds=None):
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in ("passed", "differs", "failed", "skipped")}
    parts = [f"{count} {kind}" for kind, count in counts.items() if count or kind == "passed"]
    return ", ".join(parts) + (f" in {seconds:.1f} s" if seconds is not None else "")


def write_junit(path, outcomes, suite_name):
    suites = ET.Element("testsuites", name=suite_name)
    for group in sorted({o.group for o in outcomes}):
        mine = [o for o in outcomes if o.group == group]
        suite = ET.SubElement(suites, "testsuite", name=f"{suite_name}.{group}", tests=str(len(mine)),
                              failures=str(sum(o.bad for o in mine)), skipped=str(sum(o.outcome == "skipped" for o in mine)),
                              time=f"{sum(o.seconds for o in mine):.3f}")
        for o in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{group}", name=o.name,
                                 time=f"{o.seconds:.3f}")
            ET.SubElement(case, "system-out").text = o.title + ("\n" + "\n".join(o.details) if o.details else "")
            if o.bad:
                failure = ET.SubElement(case, "failure", message=(o.details or [o.outcome])[0][:500])
                failure.text = "\n".join(o.details)
            elif o.outcome == "skipped":
                ET.SubElement(case, "skipped", message=o.reason)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def write_json(path, outcomes, **about):
    document = {**about, "summary": {kind: sum(o.outcome == kind for o in outcomes)
                                     for kind in ("passed", "differs", "failed", "skipped")},
                "results": [{"group": o.group, "name": o.name, "title": o.title, "outcome": o.outcome,
                             "details": o.details, "reason": o.reason, "seconds": round(o.seconds, 3),
                             "departure": o.departure} for o in outcomes],
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2, ensure_ascii=False)
        file.write("\n")
