"""Validate orchestrator request and response bodies against Civitai's published OpenAPI document.

The document is written for .NET and OpenAPI tooling; read literally by Python's ``jsonschema``
it would reject valid bodies. The four rules of civitai-api.md are applied while compiling a
component into a self-contained JSON Schema:

1. ``.NET`` named groups ``(?<name>`` become Python's ``(?P<name>``;
2. ``discriminator`` mappings are followed: a reference to a polymorphic schema becomes an
   ``if``/``then`` chain that picks the mapped schema by the discriminator value;
3. ``allOf`` chains are merged into one object schema (properties and required united, one
   ``additionalProperties: false``) because every part rejects its siblings' properties;
4. for requests, ``readOnly`` and server-defaulted fields are not required.

The 1.4 MB document is loaded once per process; compiled validators are cached.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.shared_specs import require_spec

SPEC_NAME = "civitai-orchestration-v2-consumers.json"
REF_PREFIX = "#/components/schemas/"
# Filled by the server when absent; the documentation's own requests never send them.
SERVER_DEFAULTED = frozenset({"currencies", "trace"})
_NET_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")

Schema = dict[str, Any]


@cache
def _components() -> dict[str, Schema]:
    document = json.loads(require_spec(SPEC_NAME).read_text(encoding="utf-8"))
    schemas: dict[str, Schema] = document["components"]["schemas"]
    return schemas


def _ref_name(ref: str) -> str:
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(REF_PREFIX) :]


class _Compiler:
    """Turns components into ``$defs`` of one schema, for requests or for responses."""

    def __init__(self, for_request: bool) -> None:
        self.for_request = for_request
        self.defs: dict[str, Schema] = {}

    def root(self, name: str) -> Schema:
        return {"$ref": self._def(name), "$defs": self.defs}

    # A component used by reference: dispatching when it is polymorphic.
    def _def(self, name: str) -> str:
        if name not in self.defs:
            self.defs[name] = {}  # placeholder: breaks recursion
            disc = self._discriminator(name)
            self.defs[name] = self._dispatch(name, disc) if disc else self._flat(name)
        return f"#/$defs/{name}"

    # The component's own merged content, never dispatching on its own discriminator.
    def _flat_def(self, name: str) -> str:
        key = f"{name}__flat"
        if key not in self.defs:
            self.defs[key] = {}
            self.defs[key] = self._flat(name)
        return f"#/$defs/{key}"

    def _discriminator(self, name: str) -> dict[str, Any] | None:
        schema = _components()[name]
        parts = [schema, *(p for p in schema.get("allOf", []) if "$ref" not in p)]
        for part in parts:
            if "discriminator" in part:
                disc: dict[str, Any] = part["discriminator"]
                return disc
        return None

    def _dispatch(self, name: str, disc: dict[str, Any]) -> Schema:
        prop = disc["propertyName"]
        mapping: dict[str, str] = disc.get("mapping", {})
        # Missing value: the base shape. Unknown value: a request must use one the server knows;
        # a response may carry a newer one, judged by the base shape.
        branch: Schema = {"$ref": self._flat_def(name)}
        if self.for_request:
            branch = {"allOf": [branch, {"properties": {prop: {"enum": sorted(mapping)}}}]}
        for value, target in reversed(list(mapping.items())):
            target_name = _ref_name(target)
            chosen = self._flat_def(name) if target_name == name else self._def(target_name)
            branch = {
                "if": {"required": [prop], "properties": {prop: {"const": value}}},
                "then": {"$ref": chosen},
                "else": branch,
            }
        return branch

    def _flat(self, name: str) -> Schema:
        return self._merge(_components()[name])

    def _merge(self, schema: Schema) -> Schema:
        """One object schema from an ``allOf`` chain (or a plain schema), references compiled."""
        if "allOf" not in schema:
            return self._convert(schema, top=True)
        merged: Schema = {"type": "object", "properties": {}, "required": []}
        closed = False
        for part in schema["allOf"]:
            piece = self._flat(_ref_name(part["$ref"])) if "$ref" in part else self._convert(part, top=True)
            for key, value in piece.get("properties", {}).items():
                old = merged["properties"].get(key)
                merged["properties"][key] = value if old is None or old == value else {"allOf": [old, value]}
            merged["required"] += [r for r in piece.get("required", []) if r not in merged["required"]]
            closed = closed or piece.get("additionalProperties") is False
        if closed:
            merged["additionalProperties"] = False
        return self._relax_required(merged)

    def _convert(self, schema: Any, top: bool = False) -> Any:
        """Copy a schema, rewriting patterns and references; drop request-irrelevant requireds."""
        if isinstance(schema, list):
            return [self._convert(item) for item in schema]
        if not isinstance(schema, dict):
            return schema
        if "$ref" in schema and isinstance(schema["$ref"], str):
            rest = {k: self._convert(v) for k, v in schema.items() if k != "$ref"}
            return {"$ref": self._def(_ref_name(schema["$ref"])), **rest}
        if "allOf" in schema and not top:
            return self._merge(schema)
        out: Schema = {}
        for key, value in schema.items():
            if key == "discriminator":
                continue
            if key == "pattern" and isinstance(value, str):
                out[key] = _NET_NAMED_GROUP.sub("(?P<", value)
            elif key == "properties" and isinstance(value, dict):
                out[key] = {prop: self._convert(sub) for prop, sub in value.items()}
            else:
                out[key] = self._convert(value)
        return self._relax_required(out)

    def _relax_required(self, schema: Schema) -> Schema:
        """Rule 4: a request need not send what the server fills (read-only or defaulted)."""
        if self.for_request and isinstance(schema.get("required"), list):
            props = schema.get("properties") or {}
            schema["required"] = [
                r for r in schema["required"] if r not in SERVER_DEFAULTED and not _read_only(props.get(r))
            ]
        return schema


def _read_only(prop: Any) -> bool:
    """Read-only, also when merging a chain wrapped the property's definitions in ``allOf``."""
    if not isinstance(prop, dict):
        return False
    return bool(prop.get("readOnly")) or any(_read_only(p) for p in prop.get("allOf", []))


@cache
def _validator(name: str, for_request: bool) -> Draft202012Validator:
    if name not in _components():
        raise KeyError(f"no schema named {name!r} in {SPEC_NAME}")
    schema = _Compiler(for_request).root(name)
    # No check_schema here: meta-validating the 1 MB result costs seconds; the self-test checks
    # the compiler's output on the training schemas.
    return Draft202012Validator(schema)


def compiled_schema(name: str, for_request: bool) -> Schema:
    """The self-contained JSON Schema built for ``name`` (for inspection and the self-test)."""
    return _Compiler(for_request).root(name)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def _errors(name: str, body: Any, for_request: bool) -> list[str]:
    validator = _validator(name, for_request)
    found: list[str] = []
    for error in validator.iter_errors(body):
        found.extend(_leaf_messages(error))
    return sorted(set(found))


def _leaf_messages(error: Any) -> list[str]:
    """Errors of an if/then branch are reported at their own path, not as one vague summary."""
    if error.context:
        return [m for sub in error.context for m in _leaf_messages(sub)]
    return [f"{_path(error.absolute_path)}: {error.message}"]


def validate_request(schema_name: str, body: Any) -> list[str]:
    """Readable errors ("steps[0].input.steps: '2000' is not of type ...") for a request body."""
    return _errors(schema_name, body, for_request=True)


def validate_response(schema_name: str, body: Any) -> list[str]:
    """Readable errors for a response body (read-only fields are required here)."""
    return _errors(schema_name, body, for_request=False)


# Simulator route name → (path, method) of the operation in the document.
SIMULATOR_ROUTES = {
    "submit": ("/v2/consumer/workflows", "post"),
    "list": ("/v2/consumer/workflows", "get"),
    "get": ("/v2/consumer/workflows/{workflowId}", "get"),
    "update": ("/v2/consumer/workflows/{workflowId}", "put"),
    "delete": ("/v2/consumer/workflows/{workflowId}", "delete"),
    "upload_blob": ("/v2/consumer/blobs", "post"),
    "refresh_blob": ("/v2/consumer/blobs/{blobId}/refresh", "post"),
    "get_blob": ("/v2/consumer/blobs/{blobId}", "get"),
    "head_blob": ("/v2/consumer/blobs/{blobId}", "head"),
    "blob_content": ("/v2/consumer/blobs/content/{encryptedToken}", "get"),
}


@cache
def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(require_spec(SPEC_NAME).read_text(encoding="utf-8"))
    return loaded


def documented_responses(route: str) -> dict[int, Schema | None]:
    """The statuses the document gives the operation, each with its JSON body schema (None
    when it documents no JSON body, e.g. a 308 or 204)."""
    path, method = SIMULATOR_ROUTES[route]
    responses = _document()["paths"][path][method]["responses"]
    out: dict[int, Schema | None] = {}
    for status, answer in responses.items():
        schema = (answer.get("content") or {}).get("application/json", {}).get("schema")
        out[int(status)] = schema
    return out


def check_answer(route: str, status: int, content_type: str, body: bytes) -> list[str]:
    """Problems of one simulator response against the document: a documented status must carry
    its documented body; an undocumented one (a 429 or 5xx it models beyond the document) must
    at least be a problem+json when it is JSON."""
    if route not in SIMULATOR_ROUTES:
        return [f"{route}: a route the document does not have"]
    where = f"{route} {status}"
    documented = documented_responses(route)
    is_json = content_type in ("application/json", "application/problem+json")
    if status not in documented:
        return [f"{where}: {p}" for p in validate_response("ProblemDetails", json.loads(body))] if is_json else []
    schema = documented[status]
    if schema is None:
        return []
    if schema.get("type") == "string":  # e.g. the 403 of a submit: a plain string
        return [] if not is_json or isinstance(json.loads(body), str) else [f"{where}: not a string"]
    if not is_json:
        return [f"{where}: a {content_type or 'bodiless'} answer where the document has JSON"]
    answer = _without_documented_extras(json.loads(body))
    return [f"{where}: {p}" for p in validate_response(_ref_name(schema["$ref"]), answer)]


def _without_documented_extras(answer: Any) -> Any:
    """The answer minus what Civitai's documentation (civitai-api.md, "Workflow object") says the
    service sends beyond the published schema: a failed step's older ``jobs[].reason`` (the only
    place a step says why it failed, e.g. which captioning image moderation refused)."""
    if isinstance(answer, dict) and isinstance(answer.get("steps"), list):
        steps = [
            {k: v for k, v in step.items() if not (k == "jobs" and step.get("status") == "failed")}
            if isinstance(step, dict)
            else step
            for step in answer["steps"]
        ]
        return {**answer, "steps": steps}
    if isinstance(answer, dict) and isinstance(answer.get("items"), list):  # a page of workflows
        return {**answer, "items": [_without_documented_extras(item) for item in answer["items"]]}
    return answer
