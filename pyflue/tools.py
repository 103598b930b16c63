"""Tools: typed functions the model may call.

``define_tool`` compiles a function's signature into a pydantic model once: the JSON schema the
model sees (with parameter descriptions taken from the docstring) and the validator that checks
the model's arguments before the call. A tool may take a :class:`ToolContext` as its first
parameter. Sync tools run in a worker thread so they never block the event loop.

A tool declared **idempotent** (``define_tool(..., idempotent=True)``, or its function marked with
:func:`idempotent` first) is safe to run again: a resumed run whose process died inside a call of it
runs the call again instead of reporting an unknown outcome (docs/resumable.md).
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints, overload

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_json

from .errors import ConfigError, ToolError, ToolTimeoutError
from .models.base import ToolDefinition

__all__ = ["IDEMPOTENT_ATTRIBUTE", "Tool", "ToolContext", "define_tool", "idempotent", "is_idempotent"]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute of a function that declares it safe to run again when its outcome is unknown (set
#: by :func:`idempotent`; ``define_tool`` reads it).
IDEMPOTENT_ATTRIBUTE = "__pyflue_idempotent__"


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about the call it serves."""

    agent: str
    instance_id: str
    session_id: str
    operation_id: str
    call_id: str
    run_id: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    session: Any = None  # the calling Session (for session.task from inside a tool)
    #: Reports an event correlated to the calling operation: ``emit(type, data)`` (e.g. ``fs_write``).
    emit: Callable[[str, dict[str, Any]], Any] | None = None
    #: The agent's sandbox, when its config has one (see :mod:`pyflue.sandbox`).
    sandbox: Any = None


class Tool:
    """A callable tool: ``definition`` is what the model sees, ``call`` validates and runs."""

    __slots__ = (
        "_definition",
        "_params",
        "_validator",
        "description",
        "function",
        "idempotent",
        "name",
        "parameters",
        "takes_ctx",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        description: str,
        parameters: dict[str, Any],
        validator: type[BaseModel] | None,
        takes_ctx: bool,
        timeout: float | None,
        idempotent: bool = False,
    ) -> None:
        self.name = name
        self.function = function
        self.description = description
        self.parameters = parameters
        self._validator = validator
        self._params = tuple(validator.model_fields) if validator is not None else ()
        self.takes_ctx = takes_ctx
        self.timeout = timeout
        #: Whether the tool is safe to run again when a resumed run does not know if a call finished.
        self.idempotent = idempotent
        self._definition: ToolDefinition | None = None

    @property
    def definition(self) -> ToolDefinition:
        """What the model sees; made once, so per-call work (token estimates) can cache by it."""
        if self._definition is None:
            self._definition = ToolDefinition(self.name, self.description, self.parameters)
        return self._definition

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Arguments as the function receives them; raises ``ToolError`` describing what is wrong."""
        if "__raw__" in args and len(args) == 1:
            raise ToolError(f"arguments are not a JSON object: {args['__raw__'][:200]!r}")
        if self._validator is None:
            _check_schema(self.parameters, args)
            return args
        try:
            model = self._validator.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(f"invalid arguments: {problems}") from None
        return {name: getattr(model, name) for name in self._params}

    async def call(
        self, args: dict[str, Any], ctx: ToolContext | None = None, timeout: float | None = None
    ) -> Any:
        """Validate and run. Raises ``ToolError`` for bad arguments, ``ToolTimeoutError`` after
        ``timeout`` (the tool's own, else the one given), and whatever the function raises."""
        kwargs = self.validate(args)
        positional = (ctx,) if self.takes_ctx else ()
        timeout = self.timeout or timeout
        if not timeout:
            return await self._invoke(positional, kwargs)
        try:
            with anyio.fail_after(timeout):
                return await self._invoke(positional, kwargs)
        except TimeoutError:
            raise ToolTimeoutError(f"tool {self.name!r} timed out after {timeout}s") from None

    async def _invoke(self, positional: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(self.function):
            return await self.function(*positional, **kwargs)
        result = await anyio.to_thread.run_sync(
            lambda: self.function(*positional, **kwargs), abandon_on_cancel=True
        )
        if inspect.isawaitable(result):
            result = await result
        return result


def tool_result_text(value: Any) -> str:
    """A tool's return value as the text the model reads: strings as is, everything else JSON."""
    if isinstance(value, str):
        return value
    try:
        return to_json(value, fallback=str).decode()
    except PydanticSerializationError:  # bytes that are not UTF-8 (an image, a file): base64, not a failure
        return to_json(value, fallback=str, bytes_mode="base64").decode()


@overload
def define_tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def define_tool(
    name: str,
    execute: Callable[..., Any],
    /,
    *,
    description: str | None = ...,
    parameters: dict[str, Any] | type[BaseModel] | None = ...,
    timeout: float | None = ...,
    idempotent: bool | None = ...,
) -> Tool: ...
@overload
def define_tool(
    *,
    name: str | None = ...,
    description: str | None = ...,
    timeout: float | None = ...,
    idempotent: bool | None = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def define_tool(
    function_or_name: Callable[..., Any] | str | None = None,
    execute: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | type[BaseModel] | None = None,
    timeout: float | None = None,
    idempotent: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a tool.

    - ``@define_tool`` / ``define_tool(fn)``: name, schema and description from the function.
    - ``@define_tool(name=..., description=..., timeout=...)``: the same with overrides.
    - ``define_tool("name", execute, description=..., parameters=...)``: ``parameters`` is a JSON
      schema (the function gets the arguments as keywords) or a pydantic model; with neither, the
      schema comes from ``execute``'s signature.

    ``idempotent=True`` declares the tool safe to run again when a resumed run does not know whether
    a call finished (``None``: as the function is marked with :func:`idempotent`).
    """
    if idempotent is not None and not isinstance(idempotent, bool):
        raise ConfigError(f"define_tool: idempotent must be True or False, got {idempotent!r}")
    if isinstance(function_or_name, str):
        if execute is None:
            raise ConfigError(f"define_tool({function_or_name!r}, execute) needs the function to run")
        return _build(execute, function_or_name, description, parameters, timeout, idempotent)
    if function_or_name is None:
        return lambda fn: _build(fn, name, description, parameters, timeout, idempotent)
    if not callable(function_or_name) and not isinstance(function_or_name, Tool):
        raise ConfigError(f"define_tool expects a function, got {type(function_or_name).__name__}")
    return _build(function_or_name, name, description, parameters, timeout, idempotent)


def idempotent(function: F) -> F:
    """Declare a function safe to run again when a resumed run does not know whether it finished: a
    tool's function (before ``define_tool``), a :class:`Tool`, or a ``ctx.step`` callable."""
    if isinstance(function, Tool):
        function.idempotent = True
    else:
        setattr(function, IDEMPOTENT_ATTRIBUTE, True)
    return function


def is_idempotent(function: object) -> bool:
    """Whether a tool, or a function, was declared idempotent."""
    if isinstance(function, Tool):
        return function.idempotent
    return getattr(function, IDEMPOTENT_ATTRIBUTE, False) is True


_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _build(
    fn: Callable[..., Any],
    name: str | None,
    description: str | None,
    parameters: dict[str, Any] | type[BaseModel] | None,
    timeout: float | None,
    idempotent: bool | None = None,
) -> Tool:
    if isinstance(fn, Tool):
        if idempotent is not None:
            fn.idempotent = idempotent
        return fn
    name = name or getattr(fn, "__name__", None)
    if not name or not _NAME.match(name):
        raise ConfigError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    doc = inspect.getdoc(fn) or ""
    summary, param_docs = _parse_docstring(doc)
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    hints = _hints(fn, name, params)
    takes_ctx = bool(params) and (
        hints.get(params[0].name) is ToolContext
        or (params[0].name in ("ctx", "context") and params[0].annotation is inspect.Parameter.empty)
    )
    if takes_ctx:
        params = params[1:]
    validator: type[BaseModel] | None
    if isinstance(parameters, dict):
        validator, schema = None, parameters
    elif isinstance(parameters, type) and issubclass(parameters, BaseModel):
        validator = parameters
        schema = _clean(parameters.model_json_schema())
    else:
        fields: dict[str, Any] = {}
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            annotation = hints.get(p.name, Any)
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (annotation, Field(default, description=param_docs.get(p.name)))
        try:
            with warnings.catch_warnings():
                # Parameters named like BaseModel attributes (json, copy, schema, validate) are fine
                # here: arguments are read back by field name. Say nothing about it to the user.
                warnings.filterwarnings("ignore", "Field name .* shadows an attribute", UserWarning)
                warnings.filterwarnings(
                    "ignore", "Field .* has conflict with protected namespace", UserWarning
                )
                validator = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
            schema = _clean(validator.model_json_schema())
        except Exception as exc:
            raise ConfigError(f"tool {name!r}: cannot build a schema from its signature: {exc}") from None
    declared = is_idempotent(fn) if idempotent is None else idempotent
    return Tool(name, fn, description or summary or name, schema, validator, takes_ctx, timeout, declared)


def _hints(fn: Callable[..., Any], name: str, params: list[inspect.Parameter]) -> dict[str, Any]:
    """The parameters' resolved annotations. One that cannot be resolved (a type defined inside a
    function under ``from __future__ import annotations``, or imported only for type checking) is a
    ``ConfigError``: silently treating it as ``Any`` would drop its validation and its schema."""
    try:
        return get_type_hints(fn, include_extras=True)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    globalns = getattr(fn, "__globals__", None)
    for p in params:
        if p.annotation is inspect.Parameter.empty:
            continue

        def shim() -> None: ...

        shim.__annotations__ = {p.name: p.annotation}
        try:
            hints.update(get_type_hints(shim, globalns, {"ToolContext": ToolContext}, include_extras=True))
        except Exception as exc:
            raise ConfigError(
                f"tool {name!r}: cannot resolve the type {p.annotation!r} of parameter {p.name!r} "
                f"({type(exc).__name__}: {exc}); define or import it at module level"
            ) from None
    return hints


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's ``title`` noise: tokens the model pays for on every call."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    if "properties" in schema:
        schema["properties"] = {
            key: {k: v for k, v in prop.items() if k != "title"} for key, prop in schema["properties"].items()
        }
    if "$defs" in schema:
        schema["$defs"] = {key: _clean(value) for key, value in schema["$defs"].items()}
    return schema


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:?\s*$", re.IGNORECASE)
_ENDS = re.compile(
    r"^\s*(Returns?|Raises|Yields|Examples?|Notes?|See Also|References|Warnings?|Attributes)\s*:?\s*$",
    re.IGNORECASE,
)
_GOOGLE = re.compile(r"^\s*(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY = re.compile(r"^(\w+)\s*(?::.*)?$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and per-parameter descriptions (Google, NumPy and Sphinx styles). Other sections
    (Returns, Raises, Examples, ...) are in neither: the model reads the summary on every call."""
    summary: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    section = "summary"  # or "args", or "other" (skipped)
    numpy = False
    for line in doc.splitlines():
        stripped = line.strip()
        sphinx = _SPHINX.match(line)
        if sphinx:
            section, current = "args", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if _SECTION.match(line):
            section, current = "args", None
            continue
        if _ENDS.match(line) or stripped.startswith(":"):
            section, current = "other", None
            continue
        if section != "summary" and stripped and set(stripped) <= {"-"}:  # NumPy underline
            numpy = numpy or section == "args"
            continue
        if section == "other":
            continue
        if section == "args":
            indented = line[:1].isspace()
            numpy_param = _NUMPY.match(line) if numpy and not indented else None
            google = _GOOGLE.match(line) if not numpy else None
            if numpy_param:  # "name : type" on the section's margin, the description below it
                current = numpy_param.group(1)
                params[current] = ""
            elif google and (not line.startswith(" " * 8) or current is None):
                current = google.group(1)
                params[current] = google.group(3).strip()
            elif stripped and not indented and not numpy:  # prose after a Google Args block
                section, current = "summary", None
                summary.append(line)
            elif current and stripped:
                params[current] = (params[current] + " " + stripped).strip()
            continue
        summary.append(line)
    return "\n".join(summary).strip(), params


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _check_schema(schema: Mapping[str, Any], args: dict[str, Any]) -> None:
    """Top-level checks for a hand-written JSON schema: required keys and property types."""
    missing = [key for key in schema.get("required", ()) if key not in args]
    if missing:
        raise ToolError(f"invalid arguments: missing required {', '.join(missing)}")
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = [key for key in args if key not in properties]
        if extra:
            raise ToolError(f"invalid arguments: unexpected {', '.join(extra)}")
    for key, value in args.items():
        kind = properties.get(key, {}).get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind else []
        allowed = tuple(t for k in kinds for t in _JSON_TYPES.get(k, ()))
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            raise ToolError(f"invalid arguments: {key} must be {' or '.join(kinds)}")


ToolLike = Tool | Callable[..., Any] | Callable[..., Awaitable[Any]]


def as_tool(value: Any, owner: str) -> Tool:
    """A config's tool entry as a :class:`Tool` (plain functions are wrapped)."""
    if isinstance(value, Tool):
        return value
    if callable(value):
        return _build(value, None, None, None, None)
    raise ConfigError(f"agent {owner!r}: tools must be define_tool(...) tools or functions, got {value!r}")
