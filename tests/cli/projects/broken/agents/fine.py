"""An agent that imports."""

from pyflue import create_agent

default = create_agent(lambda ctx: {"model": "test"})
