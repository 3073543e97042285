"""The strict server-state guard: refuse ids a Chat Completions model would silently drop.

Chat Completions keeps no conversation on the server. Given ``previous_response_id``,
``conversation_id`` or ``auto_previous_response_id=True``, the SDK sends only the new input and
the model answers without the earlier turns. ``OpenAIChatCompletionsModel`` logs one warning;
``LitellmModel`` and ``AnyLLMModel`` in chat mode say nothing. This module turns that into a
:class:`~history_store.ServerManagedStateError`, at two levels:

* :func:`check_server_state`: before a run starts (``history_store.Runner`` and ``install()``
  call it), for every agent the run can reach;
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
from .models import Backend, is_chat_completions, reachable_agents, resolve_backend, unwrap

if TYPE_CHECKING:
    from openai.types.responses.response_prompt_param import ResponsePromptParam

__all__ = [
    "StrictModel",
    "StrictModelProvider",
    "check_server_state",
    "server_state_parameters",
    "strict_model",
]

_ADVICE = (
    "Chat Completions keeps no conversation on the server, so the SDK would drop it and the "
    "model would see only the new input. Pass the history through a session instead "
    "(history_store.Runner attaches one when these parameters are left out; or pass "
    "session=store.session(...)), or run the agent on a Responses model "
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


def _describe(names: list[str]) -> str:
    if len(names) == 1:
        return f"{names[0]} was passed"
    return f"{', '.join(names[:-1])} and {names[-1]} were passed"


def _refusal(names: list[str], backend: Backend, start: Agent[Any]) -> ServerManagedStateError:
    where = (
        f"agent {backend.agent.name!r}"
        if backend.agent is start
        else f"agent {backend.agent.name!r} (reachable from {start.name!r} by handoff or as a tool)"
    )
    return ServerManagedStateError(
        f"{_describe(names)}, but {where} runs on {backend.model_class}, a Chat Completions "
        f"model. {_ADVICE}"
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

    That is when ``previous_response_id``, ``conversation_id`` or
    ``auto_previous_response_id=True`` is in effect (given, or carried by a ``RunState``
    ``input``) and the starting agent, or any agent reachable from it by handoffs or as a tool,
    resolves to a Chat Completions model under ``run_config``. It only resolves models: no
    request is sent, no session is touched, no guardrail or tool runs.
    """
    names = server_state_parameters(
        input,
        previous_response_id=previous_response_id,
        conversation_id=conversation_id,
        auto_previous_response_id=auto_previous_response_id,
    )
    if not names:
        return
    start = input._current_agent if isinstance(input, RunState) else None
    start = start if isinstance(start, Agent) else starting_agent
    for agent in reachable_agents(start):
        backend = resolve_backend(agent, run_config)
        if backend.chat_completions:
            raise _refusal(names, backend, start)


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
                f"{_describe(names)} to {model_class}, a Chat Completions model. {_ADVICE}"
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
