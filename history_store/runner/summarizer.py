"""``Summarizer``: folds the turns that left a budget's window into a running summary.

It runs one Agents SDK agent with the given model (any model the SDK runs: a name, an
``OpenAIChatCompletionsModel`` on a local server, ``LitellmModel``...), through the SDK's
own ``Runner.run`` (never with a session: a summary request keeps no history of its own).
Its input is one user message: the previous summary, then a plain transcript of the turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents import Agent, RunConfig
from agents.models.interface import Model

from .._items import extract_text, item_type_of
from ..budget.context import SummaryDraft
from ..budget.tokens import ITEM_OVERHEAD_TOKENS, TokenCounter
from ..errors import InvalidArgumentError
from ._sdk import original_runner_method
from .models import model_name

__all__ = ["Summarizer", "DEFAULT_INSTRUCTIONS"]

DEFAULT_INSTRUCTIONS = (
    "You keep the running summary of a conversation between a user and an assistant. You "
    "get the previous summary (if any) and the turns that came after it. Write the new "
    "summary: one text that replaces the previous one and covers both. Keep what later turns "
    "may need: facts, names, numbers, the user's goals and preferences, decisions made, tool "
    "results that matter, and open questions. Leave out greetings and repetition. Write in "
    "the conversation's language, in plain prose, under 250 words. Answer with the summary "
    "only."
)


class Summarizer:
    """Writes a budget's summaries with ``model``, for ``ContextBudget(summarizer=...)``.

    Args:
        model: the model to summarize with: a model name (resolved by ``run_config``'s
            provider, as for any agent) or an Agents SDK ``Model``, Chat Completions
            included.
        instructions: what the summary keeps (default :data:`DEFAULT_INSTRUCTIONS`).
        max_input_tokens: the most one summarizing request may carry (default: the budget's
            limit); a longer stretch is summarized in pieces, each folded into the last.
        run_config: the ``RunConfig`` the summarizing run gets (a model provider, tracing).
    """

    def __init__(
        self,
        model: str | Model,
        *,
        instructions: str = DEFAULT_INSTRUCTIONS,
        max_input_tokens: int | None = None,
        run_config: RunConfig | None = None,
    ) -> None:
        if not isinstance(model, (str, Model)):
            raise InvalidArgumentError(
                f"model must be a model name or an agents Model, got {type(model).__name__}"
            )
        if max_input_tokens is not None and max_input_tokens < 1:
            raise InvalidArgumentError(
                f"max_input_tokens must be positive or None, got {max_input_tokens}"
            )
        self.model = model
        self.instructions = instructions
        self.max_input_tokens = max_input_tokens
        self.run_config = run_config

    def __repr__(self) -> str:
        name = self.model if isinstance(self.model, str) else model_name(self.model)
        return f"Summarizer({name!r})"

    def overhead_tokens(self, counter: TokenCounter) -> int:
        """The instructions and the transcript's framing (two messages and a reply)."""
        framing = counter.count_text(transcript(None, [])) + 3
        return counter.count_text(self.instructions) + 2 * ITEM_OVERHEAD_TOKENS + framing

    async def summarize(
        self, previous: str | None, items: Sequence[dict[str, Any]]
    ) -> SummaryDraft:
        """The new summary of ``previous`` followed by ``items`` (oldest first)."""
        agent: Agent[Any] = Agent(
            name="history_store summarizer", instructions=self.instructions, model=self.model
        )
        run = original_runner_method("run")
        result = await run(
            agent, transcript(previous, items), max_turns=1, run_config=self.run_config
        )
        usage = result.context_wrapper.usage
        used = self.model if isinstance(self.model, str) else model_name(self.model)
        return SummaryDraft(
            text=str(result.final_output or ""),
            model=used,
            input_tokens=usage.input_tokens or None,
            output_tokens=usage.output_tokens or None,
            total_tokens=usage.total_tokens or None,
        )


def transcript(previous: str | None, items: Sequence[dict[str, Any]]) -> str:
    """The summarizer's input: the previous summary, then one line per item."""
    lines = [f"Previous summary:\n{previous}" if previous else "Previous summary: (none)", ""]
    lines.append("Turns since then:")
    for item in items:
        lines.append(f"{_speaker(item)}: {extract_text(item) or ''}")
    return "\n".join(lines)


def _speaker(item: dict[str, Any]) -> str:
    role = item.get("role")
    if isinstance(role, str):
        return role
    kind = item_type_of(item)
    name = item.get("name")
    return f"{kind} {name}" if isinstance(name, str) else kind
