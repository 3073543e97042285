"""Which API an agent's model speaks, resolved the way the Agents SDK resolves it.

The SDK picks a model per agent with ``run_config.model``, then ``agent.model``, each either a
``Model`` or a name given to ``run_config.model_provider`` (by default a ``MultiProvider``,
which honours ``litellm/`` and ``any-llm/`` prefixes and ``set_default_openai_api``). This
module asks the SDK's own resolver for the model, then classifies it, so the answer is the
model the run would use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agents import Agent, Model, RunConfig
from agents.handoffs import Handoff
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.run_internal.turn_preparation import get_model

logger = logging.getLogger("history_store")

# Compared by qualified name so that classifying a model never imports litellm or any-llm
# (both heavy, optional, and slow to import); an instance of either implies its module is loaded.
_CHAT_ONLY_CLASSES = frozenset(
    {
        f"{OpenAIChatCompletionsModel.__module__}.{OpenAIChatCompletionsModel.__qualname__}",
        "agents.extensions.models.litellm_model.LitellmModel",
    }
)
_ANY_LLM_CLASS = "agents.extensions.models.any_llm_model.AnyLLMModel"


@dataclass(frozen=True)
class Backend:
    """What one agent runs on.

    Attributes:
        agent: the agent.
        model: the resolved ``Model`` instance (wrappers included).
        model_class: the class name of the model that speaks the API, seen through wrappers.
        chat_completions: True when the model talks Chat Completions, which keeps no server
            state: ``previous_response_id`` and ``conversation_id`` are dropped by it.
    """

    agent: Agent[Any]
    model: Model
    model_class: str
    chat_completions: bool


def unwrap(model: Model) -> Model:
    """The innermost model behind wrappers that set ``__wrapped__`` (as ``strict_model`` does)."""
    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "__wrapped__", None)
        if not isinstance(inner, Model):
            break
        model = inner
    return model


def _qualified_names(model: Model) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(model).__mro__}


def _any_llm_uses_chat(model: Any) -> bool:
    if model.api is not None:
        return bool(model.api == "chat_completions")
    try:
        # Builds the any-llm client (no request) to read whether it supports Responses; this
        # is the same test AnyLLMModel makes before each call.
        return not model._supports_responses()
    except Exception as exc:
        # The call itself would fail the same way; meanwhile assume the stateless API, the
        # answer that can only make the guard stricter.
        logger.debug("cannot tell which API %r uses (%s); assuming Chat Completions", model, exc)
        return True


def is_chat_completions(model: Model) -> bool:
    """True if ``model`` is, or wraps, a model that speaks Chat Completions.

    That is ``OpenAIChatCompletionsModel``, ``LitellmModel``, or ``AnyLLMModel`` in chat mode
    (``api="chat_completions"``, or no ``api`` and a provider without Responses support).
    Any other model class counts as able to keep server state.
    """
    names = _qualified_names(unwrap(model))
    if names & _CHAT_ONLY_CLASSES:
        return True
    if _ANY_LLM_CLASS in names:
        return _any_llm_uses_chat(unwrap(model))
    return False


def resolve_backend(agent: Agent[Any], run_config: RunConfig) -> Backend:
    """The model ``agent`` would run on under ``run_config``, and whether it is Chat Completions.

    Raises whatever the SDK's resolution raises (an unknown prefix, a missing optional
    package), as the run itself would.
    """
    model = get_model(agent, run_config)
    return Backend(
        agent=agent,
        model=model,
        model_class=type(unwrap(model)).__name__,
        chat_completions=is_chat_completions(model),
    )


def _handoff_target(entry: object) -> Agent[Any] | None:
    if isinstance(entry, Agent):
        return entry
    if isinstance(entry, Handoff):
        # handoff() keeps a weak reference to its agent; hand-built Handoffs may not have one,
        # and then the target is only known when the handoff runs.
        reference = getattr(entry, "_agent_ref", None)
        target = reference() if reference is not None else None
        return target if isinstance(target, Agent) else None
    return None


def _neighbours(agent: Agent[Any]) -> Iterator[Agent[Any]]:
    for entry in agent.handoffs:
        target = _handoff_target(entry)
        if target is not None:
            yield target
    for tool in agent.tools:
        # Agent.as_tool() marks its FunctionTool and keeps the agent on it.
        nested = getattr(tool, "_agent_instance", None)
        if getattr(tool, "_is_agent_tool", False) and isinstance(nested, Agent):
            yield nested


def reachable_agents(start: Agent[Any]) -> list[Agent[Any]]:
    """``start`` and every agent reachable through handoffs and agents-as-tools, breadth first.

    Each agent appears once, even when the graph has cycles.
    """
    order: list[Agent[Any]] = [start]
    seen = {id(start)}
    index = 0
    while index < len(order):
        for neighbour in _neighbours(order[index]):
            if id(neighbour) not in seen:
                seen.add(id(neighbour))
                order.append(neighbour)
        index += 1
    return order
