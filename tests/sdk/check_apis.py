"""The official OpenAI and Anthropic Python SDKs against the running gateway, on the APIs beyond
OpenAI chat: the Responses API, Embeddings, Anthropic's Messages API, and OpenAI-shaped chat
answered by an Anthropic provider.

Run by tests/api/sdk.rs, which starts the gateway with a configuration file whose providers are
the test kit's fakes (FakeUpstream for OpenAI, FakeAnthropic for Anthropic), and passes:
  GATEWAY_URL   e.g. http://127.0.0.1:41234
  GATEWAY_KEY   a key listed in the gateway's GATEWAY_API_KEYS
and, optionally, the model names the checks ask for (each a route of the file):
  RESPONSES_MODEL        an OpenAI provider's chat model       (default gpt-4o-mini)
  EMBEDDING_MODEL        an OpenAI provider's embedding model  (default text-embedding-3-small)
  MESSAGES_MODEL         an Anthropic provider's model         (default claude-haiku-4-5)
  RATE_LIMITED_MODEL     an Anthropic provider scripted to answer 429 once (default claude-busy)
  CHAT_ANTHROPIC_MODEL   OpenAI-shaped chat routed to an Anthropic provider (default smart)
Only the base URL changes from a normal SDK set-up. The expected values are the fakes'
documented constants (crates/testkit/src/{openai,upstream,anthropic}.rs). Prints one line per
check and a closing 'N passed, N failed' line; exits non-zero on any failure.
"""

import json
import math
import os
import struct
import sys
import traceback

import anthropic
import httpx
import openai

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]
RESPONSES_MODEL = os.environ.get("RESPONSES_MODEL", "gpt-4o-mini")
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "text-embedding-3-small")
MESSAGES_MODEL = os.environ.get("MESSAGES_MODEL", "claude-haiku-4-5")
RATE_LIMITED_MODEL = os.environ.get("RATE_LIMITED_MODEL", "claude-busy")
CHAT_ANTHROPIC_MODEL = os.environ.get("CHAT_ANTHROPIC_MODEL", "smart")

# FakeUpstream, Responses API (crates/testkit/src/openai.rs): RESPONSE_TEXT, RESPONSES_USAGE
# (input, cached, output, reasoning) and RESPONSES_STREAM_USAGE; a stream's deltas are the
# chunks of Reply::stream() (upstream.rs).
RESPONSE_TEXT = "Observability is knowing what your system does."
RESPONSES_USAGE = (15, 5, 27, 8)
RESPONSES_STREAM_USAGE = (11, 2, 19, 4)
STREAM_DELTAS = ["w0 xxxx", "w1 xxxx", "w2 xxxx", "w3 xxxx", "w4 xxxx"]
# FakeUpstream, Embeddings: DEFAULT_EMBEDDING_DIMENSIONS; one token per word.
EMBEDDING_DIMENSIONS = 8
# FakeAnthropic (anthropic.rs): ANTHROPIC_TEXT, ANTHROPIC_STREAM_DELTAS, ANTHROPIC_USAGE and
# ANTHROPIC_STREAM_USAGE (input, output, cache creation, cache read; input excludes the cache
# tokens), TOOL_PREAMBLE, TOOL_USE_ID, TOOL_INPUT.
ANTHROPIC_TEXT = "Observability is knowing what your system does."
ANTHROPIC_STREAM_DELTAS = ["Observability ", "is ", "knowing ", "what your ", "system does."]
ANTHROPIC_USAGE = (25, 18, 7, 11)
ANTHROPIC_STREAM_USAGE = (13, 21, 5, 9)
TOOL_PREAMBLE = "Let me look that up."
TOOL_USE_ID = "toolu_fake_01"
TOOL_INPUT = {"city": "Paris"}

oa = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)
# The anthropic SDK (2.x) sends its key as `Authorization: Bearer`; it appends /v1/messages.
claude = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

checks = []


def check(fn):
    checks.append(fn)
    return fn


# ---------------------------------------------------------------- helpers


def f32(x):
    """x rounded to the nearest float32 (IEEE), as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fake_embedding(key, dimensions):
    """The fake's vector for an input (openai.rs, `embedding_vector`): FNV-1a 64 of the key's
    bytes seeds splitmix64, each draw's top 24 bits become a float32 in [-1, 1), and the
    vector is scaled to length 1, all in float32 arithmetic (each step rounded to float32:
    exact for +, *, / and sqrt computed in double)."""
    mask = (1 << 64) - 1
    seed = 0xCBF29CE484222325
    for b in key.encode():
        seed = ((seed ^ b) * 0x100000001B3) & mask
    vector = []
    for _ in range(dimensions):
        seed = (seed + 0x9E3779B97F4A7C15) & mask
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        vector.append(f32(f32((z >> 40) / float(1 << 23)) - 1.0))
    total = 0.0
    for x in vector:
        total = f32(total + f32(x * x))
    norm = f32(math.sqrt(total))
    return [f32(x / norm) for x in vector] if norm > 0 else vector


def as_f32(vector):
    return [f32(x) for x in vector]


def responses_usage(usage):
    return (
        usage.input_tokens,
        usage.input_tokens_details.cached_tokens,
        usage.output_tokens,
        usage.output_tokens_details.reasoning_tokens,
    )


def anthropic_usage(usage):
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    )


def prompt_tokens(usage):
    """An Anthropic usage tuple's whole prompt: input + cache creation + cache read."""
    return usage[0] + usage[2] + usage[3]


# ---------------------------------------------------------------- OpenAI: Responses API


@check
def openai_responses_create():
    r = oa.responses.create(model=RESPONSES_MODEL, input="What is observability?", max_output_tokens=50)
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text == RESPONSE_TEXT, r.output_text
    assert r.output[0].type == "message" and r.output[0].role == "assistant", r.output
    assert responses_usage(r.usage) == RESPONSES_USAGE, r.usage
    assert r.usage.total_tokens == RESPONSES_USAGE[0] + RESPONSES_USAGE[2], r.usage
    assert r.max_output_tokens == 50, r


@check
def openai_responses_stream_events_in_order():
    events = list(oa.responses.create(model=RESPONSES_MODEL, input="Stream please", stream=True))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(STREAM_DELTAS),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ], types
    assert [e.sequence_number for e in events] == list(range(len(events))), events
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == STREAM_DELTAS, deltas
    text = "".join(deltas)
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text, done
    assert events[0].response.status == "in_progress" and events[0].response.usage is None
    final = events[-1].response
    assert final.status == "completed" and final.output_text == text, final
    assert responses_usage(final.usage) == RESPONSES_STREAM_USAGE, final.usage
    assert final.usage.total_tokens == RESPONSES_STREAM_USAGE[0] + RESPONSES_STREAM_USAGE[2]


# ---------------------------------------------------------------- OpenAI: Embeddings

EMBEDDING_INPUTS = ["alpha beta", "gamma"]


@check
def openai_embeddings_base64_by_default_decode_to_the_fakes_vectors():
    # No encoding_format: the SDK asks for base64 and decodes it to floats itself.
    r = oa.embeddings.create(model=EMBEDDING_MODEL, input=EMBEDDING_INPUTS)
    assert r.object == "list" and len(r.data) == 2, r
    assert [d.index for d in r.data] == [0, 1]
    for d, text in zip(r.data, EMBEDDING_INPUTS):
        assert isinstance(d.embedding, list) and len(d.embedding) == EMBEDDING_DIMENSIONS, d
        assert d.embedding == fake_embedding(text, EMBEDDING_DIMENSIONS), (text, d.embedding)
        assert abs(math.fsum(x * x for x in d.embedding) - 1.0) < 1e-5
    assert r.data[0].embedding != r.data[1].embedding
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (3, 3), r.usage
    # Deterministic: the same request, the same vectors.
    again = oa.embeddings.create(model=EMBEDDING_MODEL, input=EMBEDDING_INPUTS)
    assert [d.embedding for d in again.data] == [d.embedding for d in r.data]


@check
def openai_embeddings_float_and_dimensions():
    r = oa.embeddings.create(model=EMBEDDING_MODEL, input=EMBEDDING_INPUTS, encoding_format="float")
    assert len(r.data) == 2
    for d, text in zip(r.data, EMBEDDING_INPUTS):
        # JSON numbers of float32 values: the same float32s as base64's.
        assert as_f32(d.embedding) == fake_embedding(text, EMBEDDING_DIMENSIONS), (text, d.embedding)
    r = oa.embeddings.create(model=EMBEDDING_MODEL, input="observability matters", dimensions=16)
    assert len(r.data) == 1 and len(r.data[0].embedding) == 16, r
    assert r.data[0].embedding == fake_embedding("observability matters", 16)
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (2, 2), r.usage


# ---------------------------------------------------------------- Anthropic: Messages API


@check
def anthropic_messages_create():
    m = claude.messages.create(
        model=MESSAGES_MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is observability?"}],
    )
    assert m.type == "message" and m.role == "assistant", m
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == ANTHROPIC_TEXT, m.content
    assert m.stop_reason == "end_turn", m
    assert anthropic_usage(m.usage) == ANTHROPIC_USAGE, m.usage


@check
def anthropic_messages_create_with_x_api_key():
    # The gateway key as `x-api-key` (the anthropic SDK before 2.0, curl examples).
    client = anthropic.Anthropic(
        base_url=URL, api_key=None, auth_token=None, max_retries=0, default_headers={"x-api-key": KEY}
    )
    m = client.messages.create(
        model=MESSAGES_MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    assert m.content[0].text == ANTHROPIC_TEXT, m
    bad = anthropic.Anthropic(
        base_url=URL, api_key=None, auth_token=None, max_retries=0, default_headers={"x-api-key": "wrong-key"}
    )
    try:
        bad.messages.create(model=MESSAGES_MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401
        return
    raise AssertionError("no AuthenticationError for a wrong x-api-key")


@check
def anthropic_messages_stream():
    with claude.messages.stream(
        model=MESSAGES_MODEL, max_tokens=100, messages=[{"role": "user", "content": "Stream please"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ANTHROPIC_STREAM_DELTAS, pieces
    assert "".join(pieces) == ANTHROPIC_TEXT
    assert final.content[0].text == ANTHROPIC_TEXT, final
    assert final.stop_reason == "end_turn", final
    assert anthropic_usage(final.usage) == ANTHROPIC_STREAM_USAGE, final.usage


@check
def anthropic_messages_tool_use():
    m = claude.messages.create(
        model=MESSAGES_MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert m.stop_reason == "tool_use", m
    assert [b.type for b in m.content] == ["text", "tool_use"], m.content
    assert m.content[0].text == TOOL_PREAMBLE
    tool = m.content[1]
    assert (tool.id, tool.name, tool.input) == (TOOL_USE_ID, "get_weather", TOOL_INPUT), tool
    assert anthropic_usage(m.usage) == ANTHROPIC_USAGE, m.usage


@check
def anthropic_messages_tool_use_streamed():
    partial = []
    with claude.messages.stream(
        model=MESSAGES_MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL_ANTHROPIC],
        tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len(partial) >= 2, partial
    assert json.loads("".join(partial)) == TOOL_INPUT, partial
    assert final.stop_reason == "tool_use", final
    tool = final.content[1]
    assert (tool.type, tool.id, tool.name, tool.input) == ("tool_use", TOOL_USE_ID, "get_weather", TOOL_INPUT)
    assert anthropic_usage(final.usage) == ANTHROPIC_STREAM_USAGE, final.usage


@check
def anthropic_count_tokens():
    r = claude.messages.count_tokens(
        model=MESSAGES_MODEL,
        system="Be brief.",
        messages=[{"role": "user", "content": "How many tokens is this"}],
    )
    # The fake counts words: 2 of the system prompt, 5 of the message.
    assert r.input_tokens == 7, r


@check
def anthropic_missing_max_tokens_raises_unprocessable_entity_error():
    # No max_tokens (the SDK's `omit`, NOT_GIVEN before it, leaves it out of the body): the
    # gateway refuses it itself, as Anthropic would, before any call (422, the field named).
    try:
        claude.messages.create(
            model=MESSAGES_MODEL,
            max_tokens=getattr(anthropic, "omit", anthropic.NOT_GIVEN),
            messages=[{"role": "user", "content": "Hi"}],
            timeout=10,
        )
    except anthropic.UnprocessableEntityError as e:
        assert e.status_code == 422, e
        error = e.body["error"]
        assert error["type"] == "invalid_request", e.body
        assert error["message"].startswith("max_tokens: required"), e.body
        return
    raise AssertionError("no UnprocessableEntityError")


@check
def anthropic_rate_limit_raises_rate_limit_error():
    try:
        claude.messages.create(
            model=RATE_LIMITED_MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )
    except anthropic.RateLimitError as e:
        assert e.status_code == 429, e
        assert e.response.headers.get("retry-after") == "30", dict(e.response.headers)
        assert e.body["error"]["type"] == "rate_limited", e.body
        return
    raise AssertionError("no RateLimitError")


@check
def anthropic_fractional_max_tokens_raw_http_is_422():
    # The same refusal without the SDK: a raw POST (the key as x-api-key) whose max_tokens is
    # not a whole number.
    r = httpx.post(
        f"{URL}/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        json={"model": MESSAGES_MODEL, "max_tokens": 0.5, "messages": [{"role": "user", "content": "Hi"}]},
        timeout=10,
    )
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"]["type"] == "invalid_request", r.text
    assert len(r.headers["x-trace-id"]) == 32, r.headers

# ---------------------------------------------------------------- OpenAI chat, answered by Anthropic


@check
def openai_chat_to_anthropic():
    r = oa.chat.completions.create(
        model=CHAT_ANTHROPIC_MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is observability?"},
        ],
        max_tokens=100,
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == ANTHROPIC_TEXT, r
    assert choice.finish_reason == "stop", choice
    assert not choice.message.tool_calls, choice
    # OpenAI's prompt_tokens count every input token: Anthropic's input + cache tokens.
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens) == (prompt_tokens(ANTHROPIC_USAGE), ANTHROPIC_USAGE[1]), u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    assert u.prompt_tokens_details.cached_tokens == ANTHROPIC_USAGE[3], u


@check
def openai_chat_stream_to_anthropic_with_usage():
    stream = oa.chat.completions.create(
        model=CHAT_ANTHROPIC_MODEL,
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage, usage_chunks = [], None, None, 0
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage, usage_chunks = chunk.usage, usage_chunks + 1
            assert chunk.choices == [], chunk
    assert "".join(pieces) == ANTHROPIC_TEXT, pieces
    assert [p for p in pieces if p] == ANTHROPIC_STREAM_DELTAS, pieces
    assert finish == "stop"
    assert usage_chunks == 1, usage_chunks
    expected = (prompt_tokens(ANTHROPIC_STREAM_USAGE), ANTHROPIC_STREAM_USAGE[1])
    assert (usage.prompt_tokens, usage.completion_tokens) == expected, usage
    assert usage.total_tokens == sum(expected), usage


@check
def openai_chat_stream_to_anthropic_without_usage_has_no_usage_chunk():
    stream = oa.chat.completions.create(
        model=CHAT_ANTHROPIC_MODEL, messages=[{"role": "user", "content": "Stream please"}], stream=True
    )
    chunks = list(stream)
    assert not any(c.usage for c in chunks), [c for c in chunks if c.usage]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANTHROPIC_TEXT


@check
def openai_chat_tool_call_to_anthropic():
    r = oa.chat.completions.create(
        model=CHAT_ANTHROPIC_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL_OPENAI],
        tool_choice="auto",
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert len(choice.message.tool_calls) == 1, choice.message
    call = choice.message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == (TOOL_USE_ID, "function", "get_weather"), call
    assert json.loads(call.function.arguments) == TOOL_INPUT, call.function.arguments
    assert r.usage.prompt_tokens == prompt_tokens(ANTHROPIC_USAGE), r.usage


@check
def openai_chat_tool_call_streamed_to_anthropic():
    stream = oa.chat.completions.create(
        model=CHAT_ANTHROPIC_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL_OPENAI],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
        stream_options={"include_usage": True},
    )
    calls, finish, usage, argument_deltas = {}, None, None, 0
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        finish = chunk.choices[0].finish_reason or finish
        for tc in delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                call["id"] = tc.id
            if tc.function and tc.function.name:
                call["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                call["arguments"] += tc.function.arguments
                argument_deltas += 1
    assert finish == "tool_calls", finish
    assert list(calls) == [0], calls
    assert (calls[0]["id"], calls[0]["name"]) == (TOOL_USE_ID, "get_weather"), calls
    assert json.loads(calls[0]["arguments"]) == TOOL_INPUT, calls
    assert argument_deltas >= 2, argument_deltas
    assert usage is not None and usage.prompt_tokens == prompt_tokens(ANTHROPIC_STREAM_USAGE), usage


passed = failed = 0
for number, fn in enumerate(checks, 1):
    try:
        fn()
        passed += 1
        print(f"{number:2}. ok      {fn.__name__}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"{number:2}. FAILED  {fn.__name__}\n{traceback.format_exc()}")
print(f"api checks: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
