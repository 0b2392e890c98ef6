"""The JSON Schema of the spec kinds, for editors' YAML validation (pure)."""

from __future__ import annotations

import json

from pydantic.json_schema import models_json_schema

from agent.model.spec import SPEC_KINDS as KINDS


def json_schema(kind: str | None = None) -> str:
    """One kind's schema, or all as `oneOf` (a file may hold any of them)."""
    if kind is not None:
        schema = KINDS[kind].model_json_schema(by_alias=True)
    else:
        refs, top = models_json_schema([(model, "validation") for model in KINDS.values()],
                                       by_alias=True, title="flink-gitops specs")
        schema = {**top, "oneOf": [refs[(model, "validation")] for model in KINDS.values()]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
