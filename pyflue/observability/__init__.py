"""OpenTelemetry export of the event stream, following the GenAI semantic conventions.

:func:`create_opentelemetry_observer` returns a sync observer (``init(on_event=...)`` or
:func:`pyflue.observe`) that turns events into spans and, with a meter provider, metrics:

=====================  ==========================================  ========  =========================
events                 span                                        kind      parent
=====================  ==========================================  ========  =========================
run_start / run_end    ``invoke_workflow {workflow}``              INTERNAL  the active span, if any
operation_start / end  ``invoke_agent {agent}``                    INTERNAL  parent op (task), run, or
                                                                             the active span
model_start / end      ``chat {model}``                            CLIENT    compaction or operation
tool_start / end       ``execute_tool {tool}``                     INTERNAL  operation
compaction_start / end ``compaction {agent}``                      INTERNAL  operation, else run
log, abort, error,     span events on the operation span (else
custom                 the run span)
=====================  ==========================================  ========  =========================

Parents come from the events' correlation ids (``run_id``, ``operation_id``, ``parent_id``, ``call_id``),
never from "the last span opened", so concurrent tools and tasks still make one tree. Start and end
times are the events' timestamps. Between its start and end events a span is current in the emitting
task, so spans made inside a tool or a model call (an instrumented HTTP client) nest under it. A span
whose end event never comes (events lost, an observer attached mid-run) ends with its parent;
:meth:`OpenTelemetryObserver.shutdown` (also run at exit) ends every span still open with status
ERROR, ``error.type`` ``interrupted``.

The package: :mod:`.observer` routes events by type to one handler per family (:mod:`.runs`,
:mod:`.operations`, :mod:`.model_calls`, :mod:`.tools`, :mod:`.tasks`, :mod:`.compaction`,
:mod:`.span_events`), which start and end spans in the observer's :mod:`.spans` table; :mod:`.metrics`
holds the histograms, :mod:`.conventions` the attribute names, :mod:`.values` the value conversions.
Only the names below are public.

opentelemetry is imported when an observer is made, never by ``import pyflue`` nor by importing this
package.
"""

from __future__ import annotations

from .observer import OpenTelemetryObserver, create_opentelemetry_observer

__all__ = ["OpenTelemetryObserver", "create_opentelemetry_observer"]
