"""JSON Schemas of every event and command, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shared.commands import COMMAND_MODELS
from shared.events import EVENT_MODELS, CloudEvent

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel


def all_schemas() -> dict[str, dict[str, object]]:
    models: dict[str, type[BaseModel]] = {**EVENT_MODELS, **COMMAND_MODELS}
    schemas: dict[str, dict[str, object]] = {}
    for name, model in sorted(models.items()):
        schema = CloudEvent[model].model_json_schema()  # type: ignore[valid-type]
        schema["title"] = name
        schemas[name] = schema
    return schemas


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        written.append(path)
    return written
