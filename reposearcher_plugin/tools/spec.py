"""Tool schemas, written once and rendered for every consumer.

A ``ToolSpec`` is the single definition of a tool's name, purpose and arguments. It renders to OpenAI
function calling JSON (litellm, vLLM, verl's tool config), to the hermes ``<tools>`` prompt block (Qwen
chat templates), to a SWE-agent bundle entry and to an MCP input schema. Argument validation of incoming
calls uses the same definition, so what a model is told and what is enforced cannot drift apart.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reposearcher_plugin.tools.paths import quoted

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


_SCHEMA_WORDS = frozenset({"required", "type", "properties", "description", "title", "additionalProperties"})


class ToolArgumentError(ValueError):
    """A call's arguments do not fit the tool's schema; the message is written for the model to act on."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # a JSON schema type: string, integer, number, boolean, array
    description: str
    required: bool = True
    default: Any = None
    enum: tuple[str, ...] | None = None
    items: str | None = None  # element type of an array

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.items:
            schema["items"] = {"type": self.items}
        return schema


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def parameters_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {param.name: param.json_schema() for param in self.params},
            "required": [param.name for param in self.params if param.required],
        }

    def openai(self) -> dict[str, Any]:
        """OpenAI / litellm / vLLM ``tools=[...]`` entry; also verl's ``tool_schema``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters_schema(),
            },
        }

    def mcp_input_schema(self) -> dict[str, Any]:
        return self.parameters_schema()

    def swe_agent(self) -> dict[str, Any]:
        """An entry of a SWE-agent bundle's ``config.yaml`` ``tools:`` mapping.

        SWE-agent turns a function call into a shell command by filling the signature's slots with each
        argument's ``argument_format`` and leaves the slot of an omitted argument empty. Optional arguments
        are therefore rendered as ``--name value`` (as its own ``edit_anthropic`` bundle does): positional
        optionals would shift when an earlier one is left out. Required arguments stay positional, so
        ``search_class QuerySet`` also works when a model types the command into bash.
        """
        signature = " ".join(
            [self.name] + [f"<{p.name}>" if p.required else f"[<{p.name}>]" for p in self.params]
        )
        arguments = []
        for param in self.params:
            argument: dict[str, Any] = {
                "name": param.name,
                "type": param.type,
                "description": param.description,
                "required": param.required,
            }
            if param.enum:
                argument["enum"] = list(param.enum)
            if param.items:
                argument["items"] = {"type": param.items}
            # SWE-agent shell-quotes string values but renders a list through the template as it is
            value = "{{value|join(' ')}}" if param.type == "array" else "{{value}}"
            if not param.required:
                argument["argument_format"] = f"--{param.name} {value}"
            elif param.type == "array":
                argument["argument_format"] = value
            arguments.append(argument)
        return {"signature": signature, "docstring": self.description, "arguments": arguments}

    def bind(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check a call's arguments against the schema and fill defaults; raises ToolArgumentError."""
        arguments = dict(arguments or {})
        known = {param.name: param for param in self.params}
        # small models copy the schema into their calls ({"file": "a.py", "required": ["file"]}): keys
        # that are JSON-schema words and no parameter of this tool carry no meaning, so they are ignored
        for echoed in _SCHEMA_WORDS - set(known):
            arguments.pop(echoed, None)
        unknown = sorted(set(arguments) - set(known))
        if unknown:
            raise ToolArgumentError(
                f"{self.name}() got unexpected argument(s) {_argument_names(unknown)}; "
                f"it takes: {self.signature()}"
            )
        bound: dict[str, Any] = {}
        for param in self.params:
            if param.name not in arguments or arguments[param.name] is None:
                if param.required:
                    raise ToolArgumentError(
                        f"{self.name}() is missing the argument {param.name!r}; it takes: {self.signature()}"
                    )
                bound[param.name] = param.default
                continue
            bound[param.name] = _coerce(self.name, param, arguments[param.name])
        return bound

    def signature(self) -> str:
        parts = [p.name if p.required else f"{p.name}={json.dumps(p.default)}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"


# ASCII digits only (str.isdigit() also accepts "²", which int() refuses), at most 18 of them
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,18}")


def _coerce(tool: str, param: Param, value: Any) -> Any:
    """Accept what models commonly send (numbers as strings, a single string for a list)."""
    if param.type == "integer" and isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if param.type == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if param.type == "array" and isinstance(value, str):
        value = [value]
    if param.type == "string" and _printable_number(value):
        value = str(value)
    expected = _JSON_TYPES.get(param.type, (object,))
    if not isinstance(value, expected) or (param.type in ("integer", "number") and isinstance(value, bool)):
        raise ToolArgumentError(
            f"{tool}(): argument {param.name!r} must be {param.type}, "
            f"got {type(value).__name__} {short_repr(value)}"
        )
    if param.enum and value not in param.enum:
        raise ToolArgumentError(f"{tool}(): argument {param.name!r} must be one of {', '.join(param.enum)}")
    if param.type == "array":
        value = list(value)
        if param.items:  # each item as an argument of that type (a tool would str() a 4,301-digit one)
            item = Param(param.name, param.items, "")
            try:
                value = [_coerce(tool, item, element) for element in value]
            except ToolArgumentError:
                raise ToolArgumentError(
                    f"{tool}(): argument {param.name!r} must be array of {param.items}, "
                    f"got {short_repr(value)}"
                ) from None
    return value


def _printable_number(value: Any) -> bool:
    """A number a string argument reads as its text: not a bool, nor an integer str() cannot print (over
    4,300 digits; names never hold 19)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, int) and abs(value) > 10**18)


# Unknown argument names an error lists: a model may send thousands, or one a megabyte long
MAX_LISTED_NAMES = 5
MAX_NAME_CHARS = 60


def _argument_names(names: Sequence[str]) -> str:
    """A few of ``names``, each cut, odd ones quoted (a newline in a name cannot forge a line)."""
    shown = [
        name if name.isidentifier() and len(name) <= MAX_NAME_CHARS else quoted(name, MAX_NAME_CHARS)
        for name in names[:MAX_LISTED_NAMES]
    ]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more else "")


_HUGE_INTEGER = "(an integer of over 18 digits)"


class _BoundedRepr(reprlib.Repr):
    """repr() with every part cut: its cost follows what is shown, not the value (a list of 100,000
    strings), and an integer of over 4,300 digits, anywhere in the value, is named, not converted."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 4, 8, 8, 8, 8
        self.maxstring, self.maxother, self.maxlong = 120, 120, 40

    def repr_int(self, x: int, level: int) -> str:
        return _HUGE_INTEGER if abs(x) > 10**18 else repr(x)


_REPR = _BoundedRepr()


def short_repr(value: Any) -> str:
    """``value`` as an error message quotes it: at most 120 characters, whatever the value holds."""
    text = _REPR.repr(value)
    return text if len(text) <= 120 else text[:120] + "..."


def openai_tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [spec.openai() for spec in specs]


def hermes_tools_prompt(specs: Sequence[ToolSpec]) -> str:
    """The tools block of Qwen's hermes chat template, as vLLM's hermes parser and verl expect it."""
    lines = [
        "# Tools",
        "",
        "You may call one or more functions to assist with the user query.",
        "",
        "You are provided with function signatures within <tools></tools> XML tags:",
        "<tools>",
    ]
    lines += [json.dumps(spec.openai(), ensure_ascii=False) for spec in specs]
    lines += [
        "</tools>",
        "",
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:",
        "<tool_call>",
        '{"name": <function-name>, "arguments": <args-json-object>}',
        "</tool_call>",
    ]
    return "\n".join(lines)
