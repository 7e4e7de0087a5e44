"""The official OpenAI Python SDK against the gateway's response cache.

Run by tests/api/sdk.rs, which starts the gateway with CACHE_ENABLED=true (a fake Groq behind
it) and passes GATEWAY_URL and GATEWAY_KEY. Each check asks the same thing twice: the second
answer must say `x-llmobs-cache: hit` and parse, in the SDK's own types, to what the first did
(a stream replayed from a whole answer and a whole answer assembled from a stream included).
Prints one line per check and a closing 'N passed, N failed' line; exits non-zero on a failure.
"""

import os
import sys
import traceback

import openai
from openai.lib.streaming.chat import ChatCompletionStreamState

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]
MODEL = "llama-3.1-8b-instant"

oa = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)
checks = []


def check(fn):
    checks.append(fn)
    return fn


def create(**kwargs):
    """A chat completion and what the cache did."""
    raw = oa.chat.completions.with_raw_response.create(**kwargs)
    return raw.parse(), raw.headers.get("x-llmobs-cache")


def streamed(**kwargs):
    """A streamed chat completion, assembled by the SDK's own stream state (what
    `client.chat.completions.stream` uses), and what the cache did."""
    raw = oa.chat.completions.with_raw_response.create(stream=True, **kwargs)
    state = ChatCompletionStreamState(input_tools=kwargs.get("tools", openai.omit))
    for chunk in raw.parse():
        state.handle_chunk(chunk)
    return state.get_final_completion(), raw.headers.get("x-llmobs-cache")


@check
def a_repeated_call_is_a_hit_with_the_same_answer():
    question = dict(model=MODEL, messages=[{"role": "user", "content": "What is a cache?"}], seed=1)
    first, cache = create(**question)
    assert cache == "miss", cache
    second, cache = create(**question)
    assert cache == "hit", cache
    assert second.model_dump() == first.model_dump()


@check
def a_whole_answer_is_replayed_to_a_streaming_client():
    question = dict(model=MODEL, messages=[{"role": "user", "content": "Replay me"}])
    first, cache = create(**question)
    assert cache == "miss", cache
    final, cache = streamed(**question, stream_options={"include_usage": True})
    assert cache == "hit", cache
    assert final.choices[0].message.content == first.choices[0].message.content
    assert final.choices[0].finish_reason == first.choices[0].finish_reason
    assert final.id == first.id
    assert final.usage.prompt_tokens == first.usage.prompt_tokens, final.usage


@check
def a_streamed_answer_is_served_whole_later():
    question = dict(model=MODEL, messages=[{"role": "user", "content": "Stream me first"}])
    final, cache = streamed(**question, stream_options={"include_usage": True})
    assert cache == "miss", cache
    whole, cache = create(**question)
    assert cache == "hit", cache
    assert whole.choices[0].message.content == final.choices[0].message.content
    assert whole.usage.completion_tokens == final.usage.completion_tokens


@check
def a_tool_call_survives_the_replay():
    question = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    )
    first, cache = create(**question)
    assert cache == "miss", cache
    call = first.choices[0].message.tool_calls[0]
    final, cache = streamed(**question)
    assert cache == "hit", cache
    replayed = final.choices[0].message.tool_calls[0]
    assert (replayed.id, replayed.function.name, replayed.function.arguments) == (call.id, call.function.name, call.function.arguments)
    assert final.choices[0].finish_reason == "tool_calls"


@check
def no_store_bypasses_the_cache():
    question = dict(model=MODEL, messages=[{"role": "user", "content": "Never keep this"}])
    for _ in range(2):
        raw = oa.chat.completions.with_raw_response.create(**question, extra_headers={"Cache-Control": "no-store"})
        assert raw.headers.get("x-llmobs-cache") == "bypass"
    _, cache = create(**question)
    assert cache == "miss", cache


@check
def embeddings_are_served_again():
    raw = oa.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["cache", "me"])
    assert raw.headers.get("x-llmobs-cache") == "miss"
    first = raw.parse()
    raw = oa.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["cache", "me"])
    assert raw.headers.get("x-llmobs-cache") == "hit"
    assert raw.parse().model_dump() == first.model_dump()


failed = 0
for fn in checks:
    try:
        fn()
        print(f"PASS {fn.__name__}")
    except Exception:
        failed += 1
        print(f"FAIL {fn.__name__}")
        traceback.print_exc(file=sys.stdout)
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
