"""Plain data types of the fake tenant: times, bodies, run steps and the ground-truth records."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

# Times are kept as .NET-style ticks (100 ns) since the Unix epoch, so the 7 fractional digits the
# Flow API prints survive comparisons in `$filter` exactly.
TICKS_PER_SECOND = 10_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?Z?$")


def to_ticks(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1) * 10


def fmt_ticks(ticks: int) -> str:
    """`2026-11-20T17:00:09.9484194Z`."""
    dt = EPOCH + timedelta(microseconds=ticks // 10)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ticks % TICKS_PER_SECOND:07d}Z"


def parse_iso_ticks(text: str) -> int:
    """Parse an ISO-8601 UTC literal with 0-7 fractional digits; raises ValueError."""
    m = _ISO.match(text)
    if not m:
        raise ValueError(f"not an ISO-8601 UTC timestamp: {text!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    base = to_ticks(datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc))
    return base + int((frac or "0").ljust(7, "0"))


class Plant(NamedTuple):
    """One planted occurrence of a fake secret in run history (ground truth).

    `secret` is the credential material itself, always verbatim in the served body or in one decoded
    layer of it (a Basic header's password, a connection string's AccountKey, a SAS or trigger URL's
    `sig` as it appears in the URL). `carrier` is the whole string that holds it (the header value,
    the URL, the connection string, the form body). `secured` means the link is hidden by Secure
    Inputs/Outputs: the value exists in history but must not be reachable through the API.
    """
    environment: str
    flow_id: str
    run_id: str
    action: str                 # action or trigger name, as in the definition
    repetition: str | None      # "000002" inside a Foreach, else None
    side: str                   # trigger_inputs | trigger_outputs | action_inputs | action_outputs
    kind: str
    secret: str
    secured: bool
    carrier: str = ""


class P(NamedTuple):
    """A plant as a template declares it, before it knows its location."""
    kind: str
    secret: str
    carrier: str


class Body:
    """One inputs or outputs content, serialised once: the bytes served, their size and md5."""
    __slots__ = ("value", "plants", "raw", "md5")

    def __init__(self, value: Any, *plants: P):
        self.value = value
        self.plants = plants
        self.raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        self.md5 = base64.b64encode(hashlib.md5(self.raw).digest()).decode()


@dataclass(slots=True)
class Repetition:
    name: str                   # "000003"
    index: int
    start: int
    end: int
    tracking_id: str
    inputs: Body | None
    outputs: Body | None
    status: str = "Succeeded"


@dataclass(slots=True)
class Step:
    """A trigger or an action as it ran."""
    name: str
    type: str
    start: int
    end: int | None
    tracking_id: str
    inputs: Body | None = None
    outputs: Body | None = None
    secure: frozenset[str] = frozenset()   # "inputs"/"outputs": hidden from run history
    status: str = "Succeeded"
    code: str = "OK"
    loop: str | None = None                # the enclosing Foreach, for an action inside one
    repetitions: list[Repetition] | None = None  # inside a Foreach: the links live here
    iterations: int | None = None          # on the Foreach itself: its scope repetitions


class RunHeader(NamedTuple):
    name: str
    start: int
    end: int | None
    status: str
    client_tracking_id: str


@dataclass(slots=True)
class RunDetail:
    header: RunHeader
    trigger: Step
    actions: dict[str, Step]
    plants: list[Plant] = field(default_factory=list)
    decoys: set[str] = field(default_factory=set)
