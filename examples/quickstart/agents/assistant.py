"""A support assistant with one tool, and a reviewer it can delegate to.

Run it:  pyflue prompt assistant case-42 "How many words are in 'to be or not to be'?"
"""

from typing import Any

from pyflue import AgentContext, create_agent, define_agent_profile, define_tool


@define_tool
def count_words(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text to count.
    """
    return len(text.split())


# A profile is a reusable, named configuration. Listed in `subagents`, it becomes a subagent: the
# assistant can delegate to it (the built-in `task` tool, or `session.task(..., agent="reviewer")`).
# It has its own instructions and tools; its model defaults to the parent's.
reviewer = define_agent_profile(
    {
        "name": "reviewer",
        "description": "Checks a summary against its source text and lists what is wrong or missing.",
        "instructions": "You are a strict reviewer. Answer 'OK' or list each problem on its own line.",
        "tools": [count_words],
    }
)


def configure(ctx: AgentContext) -> dict[str, Any]:
    """Called once per agent instance; `ctx.id` is the instance id (e.g. a customer or a case)."""
    return {
        # Claude when ANTHROPIC_API_KEY is set; otherwise the offline `test` model, so the project runs
        # as soon as it is created. PYFLUE_MODEL overrides this either way (PYFLUE_MODEL=test: offline).
        "model": "anthropic/claude-haiku-4-5" if ctx.env.get("ANTHROPIC_API_KEY") else "test",
        "instructions": f"You are a concise assistant working on {ctx.id}. Use your tools when they help.",
        "tools": [count_words],
        "subagents": [reviewer],
    }


default = create_agent(configure)
