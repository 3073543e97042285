"""The strict server-state guard: refuse ids a Chat Completions model would silently drop.

Chat Completions keeps no conversation on the server. Given ``previous_response_id``,
``conversation_id`` or ``auto_previous_response_id=True``, the SDK sends only the new input and
the model answers without the earlier turns. ``OpenAIChatCompletionsModel`` logs one warning;
``LitellmModel`` and ``AnyLLMModel`` in chat mode say nothing. This module turns that into a
:class:`~history_store.ServerManagedStateError`, at two levels:

* :func:`check_server_state`: before a run starts (``history_store.Runner`` and ``install()``
  call it), for every agent the run can reach, each against the ids the SDK would give it;
* :func:`strict_model` / :class:`StrictModelProvider`: at the model call, for code that uses
  plain ``agents.Runner``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agents import (
    Agent,
    Model,
    ModelProvider,
    ModelResponse,
    ModelRetryAdvice,
    ModelRetryAdviceRequest,
    ModelSettings,
    ModelTracing,
    RunConfig,
)
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.run_state import RunState
from agents.tool import Tool

from ..errors import ServerManagedStateError
from .models import (
    AgentTool,
    ResolvedModel,
    agent_tools,
    handoff_agents,
    is_chat_completions,
    resolve_model,
    unwrap,
)

if TYPE_CHECKING:
    from openai.types.responses.response_prompt_param import ResponsePromptParam

__all__ = [
    "StrictModel",
    "StrictModelProvider",
    "check_server_state",
    "server_state_parameters",
    "strict_model",
]

_WHY = (
    "Chat Completions keeps no conversation on the server, so the SDK would drop these ids "
    "and the model would see only the new input."
)
_RUN_ADVICE = (
    "Leave them out: history_store.Runner (or agents.Runner after history_store.install()) "
    "then keeps the conversation in a session and sends it with every request (pass "
    "session_id=... to continue one, or session=store.session(...)). Or run the agent on a "
    "Responses model (OpenAIResponsesModel, or OpenAIProvider(use_responses=True))."
)
_TOOL_ADVICE = (
    "A nested run gets only the input the tool is called with. Leave these ids out of "
    "as_tool(); to give the tool's agent a conversation of its own, pass "
    "as_tool(session=store.session(...)). Or run that agent on a Responses model "
    "(OpenAIResponsesModel, or OpenAIProvider(use_responses=True))."
)
_MODEL_ADVICE = (
    "Pass the history through a session instead (session=store.session(...), or run with "
    "history_store.Runner, which attaches one), or use a Responses model "
    "(OpenAIResponsesModel, or OpenAIProvider(use_responses=True))."
)


def server_state_parameters(
    input: object,
    *,
    previous_response_id: str | None = None,
    conversation_id: str | None = None,
    auto_previous_response_id: bool = False,
) -> list[str]:
    """Names of the server-state parameters in effect, including those a ``RunState`` carries.

    A resumed ``RunState`` keeps the ids of the run it came from, and the SDK reuses them when
    the caller passes none, so they count as supplied.
    """
    if isinstance(input, RunState):
        previous_response_id = previous_response_id or input._previous_response_id
        conversation_id = conversation_id or input._conversation_id
        auto_previous_response_id = auto_previous_response_id or input._auto_previous_response_id
    names = []
    if previous_response_id is not None:
        names.append("previous_response_id")
    if conversation_id is not None:
        names.append("conversation_id")
    if auto_previous_response_id:
        names.append("auto_previous_response_id=True")
    return names


def current_agent(starting_agent: Agent[Any], input: object) -> Agent[Any]:
    """The agent a run starts on: a resumed ``RunState``'s current agent, else the given one."""
    agent = input._current_agent if isinstance(input, RunState) else None
    return agent if isinstance(agent, Agent) else starting_agent


def _describe(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _refusal(
    names: list[str], resolved: ResolvedModel, start: Agent[Any], tool: AgentTool | None
) -> ServerManagedStateError:
    where = f"agent {resolved.agent.name!r}"
    if resolved.agent is not start:
        where += f", reachable from {start.name!r} by handoff,"
    runs_on = f"{where} runs on {resolved.model_class}, a Chat Completions model. {_WHY}"
    if tool is None:
        verb = "was" if len(names) == 1 else "were"
        return ServerManagedStateError(
            f"{_describe(names)} {verb} passed, but {runs_on} {_RUN_ADVICE}"
        )
    return ServerManagedStateError(
        f"{_describe(names)} given to the tool {tool.name!r} (agent {tool.agent.name!r} used "
        f"as a tool, a nested run), but {runs_on} {_TOOL_ADVICE}"
    )


def check_server_state(
    starting_agent: Agent[Any],
    input: object,
    run_config: RunConfig,
    *,
    previous_response_id: str | None = None,
    conversation_id: str | None = None,
    auto_previous_response_id: bool = False,
) -> None:
    """Raise :class:`ServerManagedStateError` if server state would be silently dropped.

    The SDK's semantics decide which ids reach which agent:

    * the run's ``previous_response_id``, ``conversation_id`` or
      ``auto_previous_response_id=True`` (given, or carried by a ``RunState`` ``input``) go
      with the run to its starting agent and every agent reachable from it by handoffs: any
      of them on Chat Completions under ``run_config`` is refused;
    * an agent used as a tool runs a nested run that never gets the outer ids, only those
      given to ``as_tool(previous_response_id=..., conversation_id=...)``, under
      ``as_tool(run_config=...)`` (else the outer run's): each nested graph is checked against
      its own ids, the same way, before the outer run sends anything.

    It only resolves models: no request is sent, no session is touched, no guardrail or tool
    runs.
    """
    names = server_state_parameters(
        input,
        previous_response_id=previous_response_id,
        conversation_id=conversation_id,
        auto_previous_response_id=auto_previous_response_id,
    )
    _check_run(current_agent(starting_agent, input), names, run_config, None, set())


def _check_run(
    start: Agent[Any],
    names: list[str],
    run_config: RunConfig,
    tool: AgentTool | None,
    checked: set[tuple[int, str | None, str | None, int]],
) -> None:
    """One run's ids against its handoff graph, then each agent tool's nested run."""
    agents = handoff_agents(start)
    if names:
        for agent in agents:
            resolved = resolve_model(agent, run_config)
            if resolved.chat_completions:
                raise _refusal(names, resolved, start, tool)
    for agent in agents:
        for nested in agent_tools(agent):
            key = (
                id(nested.agent),
                nested.previous_response_id,
                nested.conversation_id,
                id(nested.run_config),
            )
            if key in checked:  # graphs may have cycles
                continue
            checked.add(key)
            nested_names = server_state_parameters(
                None,
                previous_response_id=nested.previous_response_id,
                conversation_id=nested.conversation_id,
            )
            _check_run(nested.agent, nested_names, nested.run_config or run_config, nested, checked)


class StrictModel(Model):
    """A Chat Completions model that raises instead of dropping server-state ids.

    Every call carrying ``previous_response_id`` or ``conversation_id`` raises
    :class:`ServerManagedStateError` before the wrapped model sends anything; other calls go to
    the wrapped model unchanged. Attributes not defined here are read from the wrapped model,
    which is ``__wrapped__``.

    ``auto_previous_response_id=True`` never reaches a model (the SDK turns it into ids only
    for Responses models), so only the runner-level check (``history_store.Runner`` or
    :func:`history_store.install`) can refuse it.
    """

    def __init__(self, model: Model) -> None:
        self.__wrapped__ = model

    def __repr__(self) -> str:
        return f"StrictModel({self.__wrapped__!r})"

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes missing here: model name, client, SDK capability probes.
        if name == "__wrapped__":
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def _refuse(self, previous_response_id: str | None, conversation_id: str | None) -> None:
        names = server_state_parameters(
            None, previous_response_id=previous_response_id, conversation_id=conversation_id
        )
        if names:
            model_class = type(unwrap(self)).__name__
            raise ServerManagedStateError(
                f"{_describe(names)} {'was' if len(names) == 1 else 'were'} passed to "
                f"{model_class}, a Chat Completions model. {_WHY} {_MODEL_ADVICE}"
            )

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        self._refuse(previous_response_id, conversation_id)
        return await self.__wrapped__.get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        # A plain function, not a generator: the refusal is raised at the call, before the
        # wrapped model builds its stream.
        self._refuse(previous_response_id, conversation_id)
        return self.__wrapped__.stream_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )

    async def close(self) -> None:
        await self.__wrapped__.close()

    def get_retry_advice(self, request: ModelRetryAdviceRequest) -> ModelRetryAdvice | None:
        return self.__wrapped__.get_retry_advice(request)

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.__wrapped__._cleanup_on_run_end(owner)


def strict_model(model: Model) -> Model:
    """``model`` made to raise on server-state ids if it speaks Chat Completions.

    A Chat Completions model (see :func:`history_store.is_chat_completions`) comes back wrapped
    in a :class:`StrictModel`; any other model, and an already strict one, comes back as is,
    so applying this to every model is safe.
    """
    if isinstance(model, StrictModel) or not is_chat_completions(model):
        return model
    return StrictModel(model)


class StrictModelProvider(ModelProvider):
    """A provider whose Chat Completions models raise on server-state ids.

    Wraps ``provider``: each model it returns goes through :func:`strict_model`. Use it as
    ``RunConfig(model_provider=StrictModelProvider(MultiProvider()))`` to make plain
    ``agents.Runner`` refuse, rather than drop, ``previous_response_id`` and
    ``conversation_id`` for models named by string.
    """

    def __init__(self, provider: ModelProvider) -> None:
        self.__wrapped__ = provider

    def __repr__(self) -> str:
        return f"StrictModelProvider({self.__wrapped__!r})"

    def get_model(self, model_name: str | None) -> Model:
        return strict_model(self.__wrapped__.get_model(model_name))

    async def aclose(self) -> None:
        await self.__wrapped__.aclose()
