"""Counting the tokens a model is sent, and calibrating the counts by what servers report.

A :class:`TokenCounter` counts one item (a Responses-shaped input item as the Agents SDK
stores it, or a Chat Completions message: both shapes are read) or one text.
:func:`default_counter` picks ``tiktoken``'s ``o200k_base`` encoding when it can be loaded
(the ``tokens`` extra) and :class:`EstimateCounter` otherwise.

What counts of an item is what a model is sent of it: the text parts of ``content`` (a
string, or ``text`` / ``refusal`` parts), tool calls' names and arguments (``name`` and
``arguments``, or Chat's ``tool_calls[].function``), a custom tool call's ``input``, tool
outputs (``output``, a string or parts), reasoning summaries (``summary[].text``) and
reasoning text (``content`` parts). Each image part (``input_image``, ``image_url``) costs
:data:`IMAGE_TOKENS`, and each item :data:`ITEM_OVERHEAD_TOKENS` on top. Ids, statuses,
``call_id`` and encrypted reasoning are not counted.

**Offline.** ``tiktoken`` downloads ``o200k_base`` on first use and caches it in
``TIKTOKEN_CACHE_DIR`` (default: ``<tmp>/data-gym-cache``), under the SHA-1 of the file's
URL. LiteLLM's wheel ships the file under that name in
``litellm/litellm_core_utils/tokenizers/``; when ``TIKTOKEN_CACHE_DIR`` is not set,
:func:`default_counter` reads it from there if LiteLLM is installed (without importing it),
so the default is the same whatever the process imported first. Without network and without
that file, it falls back to the estimate (logged once at DEBUG).

**Calibration.** No local count matches every server (chat templates, tool schemas, another
tokenizer). :func:`calibration_ratio` turns pairs of (our estimate of a request, the input
tokens the server reported for it) into a factor to scale later estimates by;
:func:`calibrated` applies it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, InvalidArgumentError

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "TokenCounter",
    "EstimateCounter",
    "TiktokenCounter",
    "default_counter",
    "calibration_ratio",
    "calibrated",
    "CHARS_PER_TOKEN",
    "ITEM_OVERHEAD_TOKENS",
    "IMAGE_TOKENS",
    "ENCODING_NAME",
    "CALIBRATION_WINDOW",
]

logger = logging.getLogger("history_store")

CHARS_PER_TOKEN = 4
"""The estimate's rate: English prose runs about four characters to a token in OpenAI's
encodings (``o200k_base`` averages a little more, so the estimate errs high there)."""

ITEM_OVERHEAD_TOKENS = 4
"""Tokens each item costs besides its text: OpenAI's cookbook counts 3 per message for the
framing (``<|start|>{role}<|message|>...<|end|>``); one more covers a role or tool name."""

IMAGE_TOKENS = 765
"""One image part, whatever its size: what OpenAI charges a 1024x1024 image at high detail
(85 base + 4 tiles x 170). Smaller or low-detail images cost less, so this errs high."""

ENCODING_NAME = "o200k_base"
"""The encoding of OpenAI's current models (GPT-4o and later)."""

CALIBRATION_WINDOW = 8
"""How many of the most recent requests :func:`calibration_ratio` looks at by default."""

_IMAGE_PART_TYPES = frozenset({"input_image", "image_url", "image"})


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way a budget needs them: what a model is sent, never less.

    ``count_text`` counts one string. ``count_item`` counts one conversation item (a
    Responses input item or a Chat Completions message), overhead included. Both return a
    non-negative ``int`` and must not raise on any JSON-shaped item.
    """

    def count_text(self, text: str) -> int:
        """The tokens of ``text`` alone."""
        ...

    def count_item(self, item: Mapping[str, Any]) -> int:
        """The tokens ``item`` costs in a request."""
        ...


class EstimateCounter:
    """A tokenizer-free count: characters / :data:`CHARS_PER_TOKEN`, rounded up per text.

    ``count_item`` adds :data:`ITEM_OVERHEAD_TOKENS` and :data:`IMAGE_TOKENS` per image part
    (see the module docstring for what of an item counts). Deterministic and fast; off from
    a real tokenizer by a factor that :func:`calibration_ratio` measures.
    """

    def count_text(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def count_item(self, item: Mapping[str, Any]) -> int:
        return _count_item(item, self.count_text)

    def __repr__(self) -> str:
        return "EstimateCounter()"


class TiktokenCounter:
    """Counts text with a ``tiktoken`` encoding (special-token text counted as plain text).

    ``count_item`` adds the same overheads as :class:`EstimateCounter`. Build one from an
    encoding, or with :meth:`load`, which raises :class:`~history_store.ConfigurationError`
    when ``tiktoken`` or the encoding's file cannot be had.
    """

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding

    @classmethod
    def load(cls, name: str = ENCODING_NAME) -> TiktokenCounter:
        """A counter with the encoding ``name`` (default ``o200k_base``)."""
        try:
            import tiktoken
        except ImportError as exc:
            raise ConfigurationError(
                "counting tokens with tiktoken needs it installed: "
                "pip install 'history-store[tokens]'"
            ) from exc
        try:
            return cls(tiktoken.get_encoding(name))
        except Exception as exc:  # tiktoken raises requests', OSError or ValueError (hash)
            raise ConfigurationError(
                f"tiktoken could not load the {name!r} encoding ({exc}); offline, put the "
                "encoding file in TIKTOKEN_CACHE_DIR (see history_store.budget.tokens)"
            ) from exc

    def count_text(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    def count_item(self, item: Mapping[str, Any]) -> int:
        return _count_item(item, self.count_text)

    def __repr__(self) -> str:
        return f"TiktokenCounter({self.encoding.name!r})"


def default_counter() -> TokenCounter:
    """``TiktokenCounter`` with ``o200k_base`` when it loads, else :class:`EstimateCounter`.

    The encoding is loaded once per process; when it cannot be (``tiktoken`` not installed,
    or offline without the encoding file) the reason is logged once at DEBUG on the
    ``history_store`` logger and every call returns the estimate. Never raises.
    """
    encoding = _default_encoding()
    return EstimateCounter() if encoding is None else TiktokenCounter(encoding)


@cache
def _default_encoding() -> tiktoken.Encoding | None:
    # Without a cache directory of its own, tiktoken looks in a temporary one and else
    # downloads; LiteLLM's wheel ships the file, and points tiktoken at it only once it is
    # imported. Looking there first makes the default the same whatever was imported before.
    bundled = None if os.environ.get("TIKTOKEN_CACHE_DIR") else _litellm_tokenizers()
    try:
        if bundled is None:
            return TiktokenCounter.load().encoding
        os.environ["TIKTOKEN_CACHE_DIR"] = bundled
        try:
            return TiktokenCounter.load().encoding
        finally:
            del os.environ["TIKTOKEN_CACHE_DIR"]
    except ConfigurationError as exc:
        logger.debug("token counts use the estimate (characters / 4): %s", exc)
        return None


def _litellm_tokenizers() -> str | None:
    """LiteLLM's bundled tiktoken cache, found without importing LiteLLM."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = os.path.join(location, "litellm_core_utils", "tokenizers")
        if os.path.isdir(folder):
            return folder
    return None


def calibration_ratio(
    observations: Iterable[tuple[int, int]], *, window: int = CALIBRATION_WINDOW
) -> float:
    """The factor to scale estimates by, from ``(estimate, reported)`` pairs, oldest first.

    ``estimate`` is what a counter said a request's input costs; ``reported`` is the input
    tokens the server reported for that request. Pairs with a non-positive side (a server
    that reports no usage) are skipped. The answer is the **highest** ``reported /
    estimate`` among the last ``window`` usable pairs, and never below 1.0; ``1.0`` when
    there are none.

    Why the maximum and not a mean: a budget that undercounts fails the turn (the server
    answers ``context_length_exceeded``), one that overcounts only trims history a little
    early, so the factor must cover the worst recent request, not the typical one. Over
    eight requests a high quantile is the maximum anyway. Why recent ones: a session's
    requests grow, and a fixed cost the estimate misses (tool schemas, a chat template)
    weighs most on the short early requests; the last few, the largest, are the ones near
    the limit. Why never below 1.0: when the server counts fewer tokens than the estimate,
    the estimate is already safe, and scaling it down would spend the margin its errors on
    short or unusual text need.
    """
    if window < 1:
        raise InvalidArgumentError(f"window must be at least 1, got {window}")
    usable = [
        (estimate, reported) for estimate, reported in observations if min(estimate, reported) > 0
    ]
    return max([1.0, *(reported / estimate for estimate, reported in usable[-window:])])


def calibrated(estimate: int, ratio: float) -> int:
    """``estimate`` scaled by ``ratio``, rounded up (a float's last bit never adds a token)."""
    if ratio <= 0:
        raise InvalidArgumentError(f"ratio must be positive, got {ratio}")
    return math.ceil(round(estimate * ratio, 6))


def _count_item(item: Mapping[str, Any], count_text: Callable[[str], int]) -> int:
    texts, images = _sent_parts(item)
    return ITEM_OVERHEAD_TOKENS + images * IMAGE_TOKENS + sum(count_text(t) for t in texts)


def _sent_parts(item: Mapping[str, Any]) -> tuple[list[str], int]:
    """The texts a model is sent of ``item``, and how many images."""
    texts: list[str] = []
    images = 0
    pieces: list[Any] = [item.get("content"), item.get("output")]
    for key in ("name", "arguments", "input", "refusal"):
        pieces.append(item.get(key))
    for call in _mappings(item.get("tool_calls")):
        function = call.get("function")
        if isinstance(function, Mapping):
            pieces += [function.get("name"), function.get("arguments")]
    pieces += [part.get("text") for part in _mappings(item.get("summary"))]
    for piece in pieces:
        if isinstance(piece, str):
            texts.append(piece)
        elif isinstance(piece, list):
            for part in piece:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, Mapping) and part.get("type") in _IMAGE_PART_TYPES:
                    images += 1
                elif isinstance(part, Mapping):
                    texts += [v for k in ("text", "refusal") if isinstance(v := part.get(k), str)]
    return texts, images


def _mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (entry for entry in value if isinstance(entry, Mapping))
