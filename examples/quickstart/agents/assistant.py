"""A helpful assistant that can count the words of a text."""

from pyflue import create_agent, define_tool


@define_tool
def count_words(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text to count.
    """
    return len(text.split())


# Discovery picks up `default`; the agent's name is the file name ("assistant").
# The initializer runs per instance, so `ctx.id` could shape the config.
default = create_agent(
    lambda ctx: {
        "model": "anthropic/claude-haiku-4-5",  # PYFLUE_MODEL=test runs it offline
        "instructions": "You are concise. Use count_words when asked about length.",
        "tools": [count_words],
    }
)
