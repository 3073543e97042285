"""Which API an agent's model speaks, and which agents a run reaches, as the Agents SDK sees it.

The SDK picks a model per agent with ``run_config.model``, then ``agent.model``, each either a
``Model`` or a name given to ``run_config.model_provider`` (by default a ``MultiProvider``,
which honours ``litellm/`` and ``any-llm/`` prefixes and ``set_default_openai_api``). This
module asks the SDK's own resolver for the model, then classifies it, so the answer is the
model the run would use.

A run's graph has two kinds of edges, which the SDK treats differently:

* a **handoff** hands the same run (its input, its session, its server-state ids) to another
  agent: :func:`handoff_agents`;
* an **agent used as a tool** (``Agent.as_tool``) starts a nested run with its own input and
  the ids, session and run config given to ``as_tool``: :func:`agent_tools`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agents import Agent, Model, RunConfig
from agents.handoffs import Handoff
from agents.memory import Session
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.run_internal.turn_preparation import get_model

from ..errors import InvalidArgumentError

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

# Attributes through which a wrapper model exposes the model it wraps, in the order tried.
_WRAPPED_ATTRIBUTES = ("__wrapped__", "wrapped_model", "model")

_declared: set[type[Model]] = set()
_declared_lock = threading.Lock()


@dataclass(frozen=True)
class ResolvedModel:
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


def declare_chat_completions(model_class: type[Model]) -> type[Model]:
    """Make ``model_class`` (and its subclasses) count as a Chat Completions model.

    For a model class of your own that talks to a Chat Completions endpoint (or any API that
    keeps no conversation on the server): history_store then attaches history to agents on it
    and refuses server-state ids for them, as for ``OpenAIChatCompletionsModel``. Returns the
    class, so it also works as a decorator. A wrapper model that exposes the model it wraps as
    ``__wrapped__``, ``wrapped_model`` or ``model`` needs no declaration: it is seen through.
    """
    if not (isinstance(model_class, type) and issubclass(model_class, Model)):
        raise InvalidArgumentError(
            f"declare_chat_completions() takes a subclass of agents.Model, not {model_class!r}"
        )
    with _declared_lock:
        _declared.add(model_class)
    return model_class


def _layers(model: Model) -> Iterator[Model]:
    """``model``, then each model it wraps (``__wrapped__``, ``wrapped_model``, ``model``)."""
    seen: set[int] = set()
    current: Model | None = model
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = next(
            (
                value
                for name in _WRAPPED_ATTRIBUTES
                if isinstance(value := getattr(current, name, None), Model)
            ),
            None,
        )


def unwrap(model: Model) -> Model:
    """The innermost model behind wrappers (``__wrapped__``, ``wrapped_model``, ``model``)."""
    *_, innermost = _layers(model)
    return innermost


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


def _speaks_chat(model: Model) -> bool:
    with _declared_lock:
        declared = tuple(_declared)
    if declared and isinstance(model, declared):
        return True
    names = _qualified_names(model)
    if names & _CHAT_ONLY_CLASSES:
        return True
    return _ANY_LLM_CLASS in names and _any_llm_uses_chat(model)


def is_chat_completions(model: Model) -> bool:
    """True if ``model`` is, or wraps, a model that speaks Chat Completions.

    That is ``OpenAIChatCompletionsModel``, ``LitellmModel``, ``AnyLLMModel`` in chat mode
    (``api="chat_completions"``, or no ``api`` and a provider without Responses support), or a
    class given to :func:`declare_chat_completions`; wrappers are seen through (:func:`unwrap`),
    each layer checked. Any other model class counts as able to keep server state.
    """
    return any(_speaks_chat(layer) for layer in _layers(model))


def model_name(model: Model) -> str | None:
    """The model's name (``gpt-4o-mini``, ``ollama/llama3``...), if it says."""
    name = getattr(unwrap(model), "model", None)
    return name if isinstance(name, str) else None


def resolve_model(agent: Agent[Any], run_config: RunConfig) -> ResolvedModel:
    """The model ``agent`` would run on under ``run_config``, and whether it is Chat Completions.

    Raises whatever the SDK's resolution raises (an unknown prefix, a missing optional
    package), as the run itself would.
    """
    model = get_model(agent, run_config)
    return ResolvedModel(
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


def handoff_agents(start: Agent[Any]) -> list[Agent[Any]]:
    """``start`` and every agent reachable from it through handoffs, breadth first, once each:
    the agents that share the run's input, session and server-state ids."""
    order: list[Agent[Any]] = [start]
    seen = {id(start)}
    index = 0
    while index < len(order):
        for entry in order[index].handoffs:
            target = _handoff_target(entry)
            if target is not None and id(target) not in seen:
                seen.add(id(target))
                order.append(target)
        index += 1
    return order


@dataclass(frozen=True)
class AgentTool:
    """An agent used as a tool, with what ``as_tool`` gave its nested run."""

    name: str
    agent: Agent[Any]
    previous_response_id: str | None
    conversation_id: str | None
    run_config: RunConfig | None
    session: Session | None


def _as_tool_options(tool: object) -> dict[str, Any]:
    """The values ``Agent.as_tool`` closed over in the tool's implementation.

    ``as_tool`` keeps its arguments only in the closure of the function the tool runs, so
    they are read from there (the SDK version is pinned; tests/test_guard_graph.py checks
    each name against the real ``as_tool``). An unreadable tool gives ``{}``: its nested run
    is still checked when it starts, under ``install()``.
    """
    invoker = getattr(tool, "on_invoke_tool", None)
    implementation = getattr(invoker, "_invoke_tool_impl", None)
    code = getattr(implementation, "__code__", None)
    closure = getattr(implementation, "__closure__", None)
    if code is None or closure is None:
        return {}
    values = {}
    for name, cell in zip(code.co_freevars, closure, strict=True):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return values


def agent_tools(agent: Agent[Any]) -> Iterator[AgentTool]:
    """The agents ``agent`` uses as tools, each with the options of its nested run."""
    for tool in agent.tools:
        nested = getattr(tool, "_agent_instance", None)
        if not (getattr(tool, "_is_agent_tool", False) and isinstance(nested, Agent)):
            continue
        options = _as_tool_options(tool)
        run_config = options.get("run_config")
        session = options.get("session")
        yield AgentTool(
            name=str(getattr(tool, "name", nested.name)),
            agent=nested,
            previous_response_id=_optional_str(options.get("previous_response_id")),
            conversation_id=_optional_str(options.get("conversation_id")),
            run_config=run_config if isinstance(run_config, RunConfig) else None,
            session=session if isinstance(session, Session) else None,
        )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
