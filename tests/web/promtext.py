"""A strict reader of the Prometheus text format 0.0.4, enough to check what /metrics renders."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"^# HELP ({_NAME}) (.*)$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


@dataclass
class Family:
    name: str
    help: str = ""
    kind: str = "untyped"
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        assert match, f"bad labels {text!r}"
        labels[match.group(1)] = _unescape(match.group(2))
        position = match.end()
    return labels


def _value(text: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[text] if text in special else float(text)


def parse(text: str) -> dict[str, Family]:
    """Families by name; fails on anything the format does not allow."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if match := _HELP.match(line):
            assert match.group(1) not in families, f"{match.group(1)} described twice"
            current = families[match.group(1)] = Family(match.group(1), _unescape(match.group(2)))
        elif match := _TYPE.match(line):
            assert current is not None and current.name == match.group(1) and not current.samples, line
            current.kind = match.group(2)
        elif match := _SAMPLE.match(line):
            assert current is not None, f"sample before HELP/TYPE: {line}"
            name = match.group(1)
            suffixes = _SUFFIXES.get(current.kind, ("",))
            assert any(name == current.name + s for s in suffixes), f"{name} outside its family {current.name}"
            current.samples.append((name, _labels(match.group(2) or ""), _value(match.group(3))))
        else:
            raise AssertionError(f"not valid exposition: {line!r}")
    return families


def sample(families: dict[str, Family], name: str, **labels: str) -> float:
    for family in families.values():
        for sample_name, sample_labels, value in family.samples:
            if sample_name == name and sample_labels == labels:
                return value
    raise KeyError(f"{name}{labels}")
