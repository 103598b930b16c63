"""Where an import statement's time goes, measured inside one new process (run as a script).

``python worker/importcost.py STATEMENT`` prints one line ``BENCH-IMPORTS {...}``: every module the
statement loaded (who loaded it, its own time and its time with what it loaded), and every pydantic
model class, ``TypeAdapter`` and dataclass built while it ran (in which module, how long).

``python -X importtime`` cannot answer this for PyFlue: modules loaded through
``importlib.import_module`` (which ``pyflue.__getattr__`` uses to resolve its names lazily) are not
in its listing at all, and it cannot say which part of a module's own time was spent building
pydantic schemas. Here ``_frozen_importlib._find_and_load``, which both the ``import`` statement and
``import_module`` go through, is wrapped, and so are the three class builders, once their modules
load. Only ``sys`` and ``time`` are imported before the statement, as in the startup scenario; the
wrappers add a little to every figure, so read them as shares, and take the import's own figure from
the startup scenario.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would be charged to the statement
if TYPE_CHECKING:
    from typing import Any

_perf = time.perf_counter
_stack: list[list[Any]] = []  # [module name, seconds spent in modules it loaded]
_modules: list[dict[str, Any]] = []
_builds: list[dict[str, Any]] = []


def _importing() -> str:
    """The module being loaded now (build frames, named ``kind:class``, are skipped)."""
    for name, _ in reversed(_stack):
        if ":" not in name:
            return str(name)
    return "__main__"


def _timed_build(kind: str, build: Any, name_of: Any) -> Any:
    """``build`` timed; modules it loads (pydantic loads some on its first model) are recorded as
    loaded by the build, and their time is left out of the build's own time."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        name = name_of(args, kwargs)
        frame = f"{kind}:{name}"
        where = _importing()
        _stack.append([frame, 0.0])
        start = _perf()
        try:
            return build(*args, **kwargs)
        finally:
            total = _perf() - start
            _, loads = _stack.pop()
            if _stack:
                _stack[-1][1] += loads  # the build is the enclosing module's own time; its loads are not
            _builds.append({"kind": kind, "name": name, "frame": frame, "in": where, "self_s": total - loads})

    return timed


def _model_name(args: Any, kwargs: Any) -> str:
    # ModelMetaclass.__new__(mcs, cls_name, bases, namespace, ...)
    return f"{args[3].get('__module__', '?')}.{args[1]}"


def _adapter_name(args: Any, kwargs: Any) -> str:
    # TypeAdapter.__init__(self, type, ...)
    target = args[1] if len(args) > 1 else kwargs.get("type")
    return str(getattr(target, "__qualname__", None) or target)[:80]


def _dataclass_name(args: Any, kwargs: Any) -> str:
    cls = args[0]
    return f"{cls.__module__}.{cls.__qualname__}"


def _instrument(name: str) -> None:
    """Wrap the class builders of a module that has just loaded."""
    module = sys.modules.get(name)
    if module is None:
        return
    if name == "pydantic._internal._model_construction":
        meta = module.ModelMetaclass
        meta.__new__ = staticmethod(_timed_build("model", meta.__new__, _model_name))
    elif name == "pydantic.type_adapter":
        adapter = module.TypeAdapter
        adapter.__init__ = _timed_build("TypeAdapter", adapter.__init__, _adapter_name)
    elif name == "dataclasses":
        module._process_class = _timed_build("dataclass", module._process_class, _dataclass_name)


def _install() -> None:
    import _frozen_importlib as bootstrap

    original = bootstrap._find_and_load

    def find_and_load(name: str, import_: Any) -> Any:
        if name in sys.modules:
            return original(name, import_)
        parent = _stack[-1][0] if _stack else "__main__"  # a module, or the build that loaded it
        _stack.append([name, 0.0])
        start = _perf()
        try:
            return original(name, import_)
        finally:
            total = _perf() - start
            _, children = _stack.pop()
            if _stack:
                _stack[-1][1] += total
            _modules.append(
                {"name": name, "parent": parent, "cumulative_s": total, "self_s": total - children}
            )
            _instrument(name)

    bootstrap._find_and_load = find_and_load
    if "dataclasses" in sys.modules:
        _instrument("dataclasses")


def main(argv: list[str]) -> int:
    statement = argv[1]
    _install()
    start = _perf()
    exec(statement, {})
    elapsed = _perf() - start
    import json

    print("BENCH-IMPORTS " + json.dumps({"total_s": elapsed, "modules": _modules, "builds": _builds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
