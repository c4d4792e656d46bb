"""Request bodies and query parameters checked against Discord's official OpenAPI document (tests/specs).

The document is loaded once per process. Two deliberate relaxations, both matching what
Discord accepts: snowflakes may be JSON integers (discord.py sends some ids as ints), and
boolean query flags may be ``1``/``0`` as well as ``true``/``false`` (discord.py sends
``with_response=1``). Query values arrive as text: those the document declares as integers or
booleans are read as such before they are checked.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.shared_specs import spec_path
from tests.stage.violations import Violation

SPEC_NAME = "discord-openapi.json"
SPEC_URI = "urn:stage:discord-openapi"
MAX_REPORTED = 5


def _relax_snowflakes(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    snowflake = spec["components"]["schemas"]["SnowflakeType"]
    # "pattern" only applies to strings, so ints pass as long as they are not negative.
    snowflake["type"] = ["string", "integer"]
    snowflake["minimum"] = 0
    return spec


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenApiValidator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = _relax_snowflakes(spec)
        resource = DRAFT202012.create_resource(self._spec)
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator | None] = {}

    @classmethod
    def from_file(cls, path: Path) -> OpenApiValidator:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def knows(self, route: str) -> bool:
        method, path = route.split(" ", 1)
        return method.lower() in self._spec["paths"].get(path, {})

    def _validator(self, route: str) -> Draft202012Validator | None:
        if route not in self._validators:
            method, path = route.split(" ", 1)
            operation = self._spec["paths"].get(path, {}).get(method.lower(), {})
            content = operation.get("requestBody", {}).get("content", {})
            validator = None
            if "application/json" in content:
                ref = "#/" + _pointer(
                    "paths", path, method.lower(), "requestBody", "content", "application/json", "schema"
                )
                validator = Draft202012Validator({"$ref": SPEC_URI + ref}, registry=self._registry)
            self._validators[route] = validator
        return self._validators[route]

    def validate_query(self, route: str, query: dict[str, str]) -> list[Violation]:
        """The query parameters the document declares for ``route``, each against its schema."""
        method, path = route.split(" ", 1)
        operation = self._spec["paths"].get(path, {}).get(method.lower(), {})
        out = []
        for index, parameter in enumerate(operation.get("parameters", [])):
            name = parameter.get("name")
            if parameter.get("in") != "query" or name not in query:
                continue
            ref = "#/" + _pointer("paths", path, method.lower(), "parameters", str(index), "schema")
            validator = Draft202012Validator({"$ref": SPEC_URI + ref}, registry=self._registry)
            value: Any = query[name]
            if parameter["schema"].get("type") == "boolean":
                value = QUERY_BOOLEANS.get(value.lower(), value)
            elif parameter["schema"].get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    out.append(Violation(route, ("query", name), f"{value!r} is not an integer", source="openapi"))
                    continue
            out.extend(
                Violation(route, ("query", name), describe(error), source="openapi")
                for error in validator.iter_errors(value)
            )
        return out

    def validate(self, route: str, body: Any) -> list[Violation]:
        validator = self._validator(route)
        if validator is None:
            return []
        out = []
        for error in validator.iter_errors(body):
            cause = deepest_cause(error)
            out.append(Violation(route, tuple(cause.absolute_path), describe(cause), source="openapi"))
            if len(out) >= MAX_REPORTED:
                break
        return out


MISMATCH = ("type", "enum", "const")
QUERY_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def deepest_cause(error: ValidationError) -> ValidationError:
    """For a union ("anyOf"/"oneOf") error, the cause in the branch the body was meant for.

    A modal callback fails every branch of the callback union; the modal branch fails on what is
    really wrong (say ``data.title`` too long) while the others fail on a type or enum mismatch
    (``type`` is 9, not 4). So: the branch with the fewest mismatches, then the deepest cause.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return error
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def rank(errors: list[ValidationError]) -> tuple[int, int, int]:
        causes = [deepest_cause(e) for e in errors]
        mismatches = sum(c.validator in MISMATCH for c in causes)
        return -mismatches, max(len(c.absolute_path) for c in causes), -len(errors)

    best = max(branches.values(), key=rank)
    return max((deepest_cause(e) for e in best), key=lambda c: (c.validator not in MISMATCH, len(c.absolute_path)))


def describe(error: ValidationError) -> str:
    """The error without echoing a huge instance back."""
    instance, limit = error.instance, error.validator_value
    if error.validator == "maxLength" and isinstance(instance, str):
        return f"{len(instance)} characters, more than the {limit} allowed"
    if error.validator == "maxItems" and isinstance(instance, list):
        return f"{len(instance)} items, more than the {limit} allowed"
    message = error.message
    return message if len(message) <= 300 else message[:300] + "…"


@functools.cache
def shared_validator() -> OpenApiValidator:
    """The process-wide validator (the vendored document; a missing one fails the test)."""
    return OpenApiValidator.from_file(spec_path(SPEC_NAME))
