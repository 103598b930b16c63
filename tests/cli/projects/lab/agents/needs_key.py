"""An agent on a real provider: without ANTHROPIC_API_KEY (and PYFLUE_MODEL) it cannot run."""

from pyflue import create_agent

default = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"})
