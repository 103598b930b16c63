"""One adapter per framework, all behind :mod:`adapters.base`'s interface.

Each adapter module is imported only inside its own framework's virtualenv and exposes
``create(options) -> Adapter``.
"""
