"""Side-by-side benchmarks of PyFlue against the frameworks users would pick instead.

``python -m benchmarks [--quick] [--only SCENARIO] [--frameworks NAME ...] [--profile]``. Each
framework is installed, pinned, into its own virtualenv under ``benchmarks/.venvs``; each scenario
runs in a subprocess of that venv through one adapter per framework (``worker/adapters``). These
are measurements, never timed tests: nothing here fails because a figure is slow.
"""
