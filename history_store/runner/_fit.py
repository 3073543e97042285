"""Fitting each request of a budgeted run within ``ContextBudget.limit``, before it is sent.

The session's window (``_window``) was sized for the history alone. Before each request the
runner's model-input filter counts the rest too: the instructions, the tool, handoff and
output schemas, the new input and the items the run has made so far. When the total,
calibrated, is over the limit, the oldest whole history turns go, then the summary; when
what is left still does not fit, :class:`ContextBudgetExceededError` is raised, and nothing
is sent. The summary message moves into the instructions, so it is the first system text
whatever a server's chat template allows.

What the run's last request carried is noted on its ``RunTurns`` (the estimate, for the
calibration; the oldest stored item sent, for ``hs_turns.window_first_seq`` and the
summarizer).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agents import Agent, FunctionTool, Handoff
from agents.agent_output import AgentOutputSchema, AgentOutputSchemaBase
from agents.run_config import ModelInputData

from .._run_turns import RunTurns
from .._window import Window
from ..budget.context import ContextBudget, room_for, trim_oldest_turns
from ..budget.tokens import ITEM_OVERHEAD_TOKENS, TokenCounter, calibrated
from ..errors import ContextBudgetExceededError

REQUEST_OVERHEAD_TOKENS = 3
"""Tokens every request costs beyond its messages: the reply's priming
(``<|start|>assistant<|message|>``, as OpenAI's cookbook counts it)."""

# Keys the SDK strips from stored items before it sends them (run_internal.items).
_NOT_SENT = frozenset({"created_by", "id", "tool_call_session_description", "tool_call_title"})


class SchemaCosts:
    """The tokens of each agent's tool, handoff and output schemas, counted once per run."""

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter
        self._known: dict[int, tuple[Agent[Any], int]] = {}

    def __call__(self, agent: Agent[Any]) -> int:
        known = self._known.get(id(agent))
        if known is None or known[0] is not agent:
            texts = _schema_texts(agent)
            cost = sum(self._counter.count_text(text) + ITEM_OVERHEAD_TOKENS for text in texts)
            known = (agent, cost)
            self._known[id(agent)] = known
        return known[1]


def _schema_texts(agent: Agent[Any]) -> list[str]:
    """The JSON a request carries for ``agent``'s tools, handoffs and output type, as wide as
    the wire's (so never counted short). Tools of MCP servers are left to calibration."""
    texts = []
    for tool in agent.tools:
        if isinstance(tool, FunctionTool):
            texts.append(_function(tool.name, tool.description, tool.params_json_schema))
        else:
            texts.append(json.dumps({"type": getattr(tool, "name", type(tool).__name__)}))
    for entry in agent.handoffs:
        if isinstance(entry, Handoff):
            texts.append(
                _function(entry.tool_name, entry.tool_description, entry.input_json_schema)
            )
        elif isinstance(entry, Agent):
            name = Handoff.default_tool_name(entry)
            texts.append(_function(name, Handoff.default_tool_description(entry), {}))
    output = agent.output_type
    if isinstance(output, AgentOutputSchemaBase):
        texts.append(json.dumps(output.json_schema()))
    elif output is not None and output is not str:
        # An output type the SDK itself rejects fails the run when it starts.
        with contextlib.suppress(Exception):
            texts.append(json.dumps(AgentOutputSchema(output).json_schema()))
    return texts


def _function(name: str, description: str | None, parameters: Mapping[str, Any]) -> str:
    wire = {"name": name, "description": description or "", "parameters": parameters}
    return json.dumps({"type": "function", "function": wire})


def _same_item(sent: object, stored: object) -> bool:
    if sent == stored:
        return True
    if not isinstance(sent, Mapping) or not isinstance(stored, Mapping):
        return False
    return {k: v for k, v in sent.items() if k not in _NOT_SENT} == {
        k: v for k, v in stored.items() if k not in _NOT_SENT
    }


def _matched(items: Sequence[Any], window: Window | None) -> int:
    """How many leading request items are the window's (the caller's filter may have
    changed them; only those are known history)."""
    if window is None:
        return 0
    count = 0
    for sent, stored in zip(items, window.items, strict=False):
        if not _same_item(sent, stored):
            break
        count += 1
    return count


def _with_summary(instructions: str | None, summary: Any) -> str:
    text = summary.get("content") if isinstance(summary, Mapping) else None
    text = text if isinstance(text, str) else ""
    return f"{instructions}\n\n{text}" if instructions else text


def fit_request(
    data: ModelInputData,
    agent: Agent[Any],
    budget: ContextBudget,
    plan: RunTurns | None,
    counter: TokenCounter,
    schema_costs: SchemaCosts,
) -> ModelInputData:
    """``data`` cut to fit ``budget`` (see the module docstring)."""
    window = plan.window if plan is not None else None
    ratio = window.ratio if window is not None else 1.0
    items = list(data.input)
    matched = _matched(items, window)
    summary = window is not None and window.summary is not None and matched >= 1
    start = 1 if summary else 0
    known: list[int] = window.tokens[:matched] if window is not None else []
    rest = sum(counter.count_item(item) for item in items[matched:] if isinstance(item, Mapping))
    written = (
        counter.count_text(data.instructions) + ITEM_OVERHEAD_TOKENS if data.instructions else 0
    )
    schemas = schema_costs(agent)
    fixed = written + schemas + rest + REQUEST_OVERHEAD_TOKENS
    room = room_for(budget.limit, ratio)
    if fixed > room:
        raise _exceeded(budget, ratio, instructions=written, schemas=schemas, items=rest)
    total = fixed + sum(known)
    dropped = 0
    if total > room and window is not None:
        turns, tokens = window.turns[start:matched], window.tokens[start:matched]
        dropped = trim_oldest_turns(turns, tokens, total - room)
        total -= sum(tokens[:dropped])
        if total > room and summary:
            total -= known[0]
            summary = False
    kept = items[start + dropped : matched] + items[matched:]
    instructions = _with_summary(data.instructions, items[0]) if summary else data.instructions
    if plan is not None:
        plan.estimated_input_tokens += total
        first = start + dropped
        plan.window_first_seq = (
            window.seqs[first] if window is not None and first < matched else plan.first_seq
        )
    return ModelInputData(input=kept, instructions=instructions)


def _exceeded(
    budget: ContextBudget, ratio: float, *, instructions: int, schemas: int, items: int
) -> ContextBudgetExceededError:
    needed = calibrated(instructions + schemas + items + REQUEST_OVERHEAD_TOKENS, ratio)
    return ContextBudgetExceededError(
        f"this request needs about {needed} input tokens before any history (instructions "
        f"{instructions}, tool, handoff and output schemas {schemas}, the new input and this "
        f"run's items {items}; estimates x{ratio:.2f}, this session's calibration), over the "
        f"budget's {budget.limit} (max_input_tokens {budget.max_input_tokens} - "
        f"reserve_output_tokens {budget.reserve_output_tokens}). Nothing was sent. Shorten "
        "the input or the instructions, give the agent fewer tools, or raise max_input_tokens "
        "to what the model takes.",
        needed=needed,
        limit=budget.limit,
    )
