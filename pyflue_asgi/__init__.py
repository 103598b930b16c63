"""PyFlue over HTTP: ``create_app(project)`` returns a plain ASGI 3 app (Starlette inside) serving
the project's agents, workflows and runs, with SSE streams that resume and an OpenAPI document.
Installed by the ``asgi`` extra. See docs/serving.md."""

from __future__ import annotations

from .app import PyFlueApp, create_app
from .auth import Auth

__all__ = ["Auth", "PyFlueApp", "create_app"]
