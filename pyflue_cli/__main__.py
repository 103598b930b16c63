"""``python -m pyflue_cli``: the same program as the ``pyflue`` console script."""

from __future__ import annotations

from .main import main

raise SystemExit(main())
