"""``pyflue``: the command line of PyFlue (``pip install pyflue[cli]``).

A thin adapter: it parses arguments, calls the core (:mod:`pyflue`) and renders the event stream.
Nothing here decides how a run behaves. Importing this package is cheap on purpose, because
``pyflue --help`` is timed: the core, rich and the providers load only when a command needs them.
"""
