"""The simulated runner's agents: scripts a name can follow (`echo,nap=sleep:2,logs:5`), and
the Agent object each registers (docs/opik-behaviour.md#cli-agents)."""
import math
from collections import namedtuple

DEFAULT_AGENTS = "echo,fail,sleep:5,logs:10"
MAX_AGENTS = 50  # the server's limit per runner
SCRIPTS = ("echo", "fail", "sleep", "logs", "timeout")  # cli.py's --help describes each
STRING_PARAM = {"name": "message", "type": "string", "presence": "optional"}
# echo declares one optional param of each type the CLI registers, so a form has every kind of field.
ECHO_PARAMS = [
    STRING_PARAM,
    {"name": "count", "type": "integer", "presence": "optional"},
    {"name": "temperature", "type": "float", "presence": "optional"},
    {"name": "verbose", "type": "boolean", "presence": "optional"},
]

Agent = namedtuple("Agent", "name script value label")


def parse_agents(spec):
    """`[name=]script` items, comma separated (`echo,nap=sleep:2,logs:5`) -> [Agent]. The name
    defaults to the script's word. ValueError says what is wrong."""
    agents = []
    for item in (part.strip() for part in (spec or "").split(",")):
        if not item:
            continue
        name, sep, label = item.rpartition("=")
        name, label = (name.strip(), label.strip()) if sep else (None, item)
        word, colon, argument = label.partition(":")
        if word not in SCRIPTS:
            raise ValueError(f"unknown script {label!r} (known: echo, fail, sleep:SECONDS, logs:N, timeout)")
        value = None
        if word in ("sleep", "logs"):
            if not colon:
                raise ValueError(f"{word} needs a number: {'sleep:SECONDS' if word == 'sleep' else 'logs:N'}")
            try:
                value = float(argument) if word == "sleep" else int(argument)
            except ValueError:
                raise ValueError(f"{label!r}: {argument!r} is not a {'number' if word == 'sleep' else 'whole number'}") from None
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{label!r}: must be a finite number, not negative")
        elif colon:
            raise ValueError(f"{word} takes no argument, got {label!r}")
        if sep and not name:
            raise ValueError(f"{item!r}: the agent's name is empty")
        agent = Agent(name or word, word, value, label)
        if any(other.name == agent.name for other in agents):
            raise ValueError(f"two agents named {agent.name!r}: name one of them, e.g. nap={label}")
        agents.append(agent)
    if not agents:
        raise ValueError("no agents: give at least one, e.g. echo")
    if len(agents) > MAX_AGENTS:
        raise ValueError(f"{len(agents)} agents: a runner registers at most {MAX_AGENTS}")
    return agents


def declaration(agent):
    """The Agent object `PUT agents` registers (docs/opik-behaviour.md#cli-agents): no name inside, timeout 0."""
    return {
        "description": f"Simulated ({agent.label}): {describe(agent)}.",
        "language": "python",
        "params": ECHO_PARAMS if agent.script == "echo" else [STRING_PARAM],
        "timeout": 0,
    }


def describe(agent):
    """What the agent does, in its registered description."""
    if agent.script == "sleep":
        return f"waits {agent.value:g} s, then returns its inputs"
    if agent.script == "logs":
        return f"writes {agent.value} log lines, alternating stdout and stderr, then returns its inputs"
    return {
        "echo": "returns its inputs as the result",
        "fail": "fails with an error (the `message` input as its text, if given)",
        "timeout": "never answers: the job stays running until the server times it out",
    }[agent.script]


def check_name(name):
    """The CLI's rules for a runner name (it travels in the link with a one-byte length)."""
    if name is None:
        return
    if not name.strip():
        raise ValueError("the runner name must not be empty")
    if len(name) > 128 or len(name.encode("utf-8")) > 255:
        raise ValueError("the runner name must be at most 128 characters and 255 UTF-8 bytes")
