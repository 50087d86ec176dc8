"""Schemathesis hooks for the conformance run (`tests/e2e/test_schemathesis.py` loads this
module through `SCHEMATHESIS_HOOKS`).

`filter_case` keeps the run's admin from editing the products the test seeded with stock
(their ids and skus come in `EMPORIUM_SCHEMATHESIS_PROTECTED`, JSON `[value, ...]`): the
stateful phase orders them through the document's links, which needs them unchanged.

`filter_failure` reads only the OpenAPI document: a JSON Schema cannot say that a product id
must name an existing product, that a cursor must be one the list returned, or that `from`
must precede `to`. The gateway lists such fields per operation in the extension
`x-emporium-semantic-fields` (field -> rule, `*` for an array index). A "schema-valid request
rejected" failure (ST202) is dropped only when the answer is a 4xx problem the operation
documents whose `errors` name nothing but those fields; every other rejection of
schema-valid input still fails the run. Schemathesis counts the dropped failures in its
summary ("Filtered: N"); each is also written to `EMPORIUM_SCHEMATHESIS_ACCEPTED_LOG`
(operation, status, fields) when set, for the test to print.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

EXTENSION = "x-emporium-semantic-fields"
PROTECTED = frozenset(json.loads(os.environ.get("EMPORIUM_SCHEMATHESIS_PROTECTED", "[]")))
# Writes that could take a seeded product's stock away: operation -> path parameter.
SEED_WRITES = {
    "PATCH /api/v1/products/{id}": "id",
    "DELETE /api/v1/products/{id}": "id",
    "PUT /api/v1/inventory/{sku}": "sku",
}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Drop a generated write to a seeded product or its stock."""
    parameter = SEED_WRITES.get(case.operation.label)
    return parameter is None or (case.path_parameters or {}).get(parameter) not in PROTECTED


def semantic_fields(operation: Any) -> dict[str, str]:
    raw = operation.definition.raw
    declared = raw.get(EXTENSION, {}) if isinstance(raw, dict) else {}
    return declared if isinstance(declared, dict) else {}


def named_fields(content: bytes) -> set[str] | None:
    """The `field`s of a problem body's `errors`; None when the body is not such a problem."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    fields = {e.get("field") for e in errors if isinstance(e, dict)}
    if not all(isinstance(f, str) for f in fields):
        return None
    return {str(f) for f in fields}


def only_semantic(fields: set[str], declared: dict[str, str]) -> bool:
    return all(any(fnmatch.fnmatchcase(f, pattern) for pattern in declared) for f in fields)


def documented(operation: Any, status: int) -> bool:
    raw = operation.definition.raw
    return isinstance(raw, dict) and str(status) in raw.get("responses", {})


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure except a documented 4xx for a semantic rule the document declares
    (a 400 naming the field, or the 415 of an upload whose bytes are not an image)."""
    status = response.status_code
    if not isinstance(failure, RejectedPositiveData) or not 400 <= status < 500:
        return True
    declared = semantic_fields(case.operation)
    fields = named_fields(response.content)
    accepted = bool(
        declared
        and documented(case.operation, status)
        and fields is not None
        and only_semantic(fields, declared)
    )
    if accepted and (log := os.environ.get("EMPORIUM_SCHEMATHESIS_ACCEPTED_LOG")):
        with open(log, "a", encoding="utf-8") as out:
            names = sorted({re.sub(r"\.\d+\.", ".*.", f) for f in fields or ()})
            out.write(f"{case.operation.label} {status} {','.join(names)}\n")
    return not accepted
