"""The official OpenAI and Groq Python SDKs against the running gateway.

Run by tests/api/sdk.rs, which starts the gateway (with a fake Groq behind it) and passes:
  GATEWAY_URL  e.g. http://127.0.0.1:41234
  GATEWAY_KEY  a key listed in the gateway's GATEWAY_API_KEYS
and optionally:
  GATEWAY_MODEL  the model name the checks ask for (default llama-3.1-8b-instant), e.g. a
                 route of the gateway's configuration file; /v1/models must list it
Only the base URL changes from a normal SDK set-up. The model `rate-limited` (answered 429 by
the fake upstream) must reach the upstream unchanged: with a configuration file, through
`[gateway] default_provider`. Prints one line per check and a closing 'N passed, N failed'
line; exits non-zero on any failure.
"""

import json
import os
import sys
import traceback

import groq
import openai

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]
MODEL = os.environ.get("GATEWAY_MODEL", "llama-3.1-8b-instant")
# The fake upstream's answer to a plain chat call.
EXPECTED = "Observability is knowing what your system does."

oa = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)
gq = groq.Groq(base_url=URL, api_key=KEY, max_retries=0)
checks = []


def check(fn):
    checks.append(fn)
    return fn


@check
def openai_chat_with_history():
    r = oa.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is observability?"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert r.choices[0].message.content == EXPECTED, r
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 34, 46)


@check
def openai_streaming_receives_every_chunk_and_usage():
    stream = oa.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "w0 xxxxw1 xxxxw2 xxxxw3 xxxxw4 xxxx", text
    assert finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (9, 21), usage


@check
def openai_tool_call():
    r = oa.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }],
        tool_choice="auto",
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


@check
def openai_json_mode():
    r = oa.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content) == {"answer": 42}


@check
def openai_rate_limit_raises_rate_limit_error():
    try:
        oa.chat.completions.create(model="rate-limited", messages=[{"role": "user", "content": "hi"}])
    except openai.RateLimitError as e:
        assert e.status_code == 429
        assert e.response.headers.get("retry-after") == "30"
        assert e.body["type"] == "rate_limited", e.body
        return
    raise AssertionError("no RateLimitError")


@check
def openai_wrong_gateway_key_raises_authentication_error():
    bad = openai.OpenAI(base_url=f"{URL}/v1", api_key="wrong-key", max_retries=0)
    try:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        return
    raise AssertionError("no AuthenticationError")


@check
def openai_models_list():
    ids = [m.id for m in oa.models.list()]
    assert MODEL in ids, ids


@check
def groq_chat():
    r = gq.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert r.choices[0].message.content == EXPECTED
    assert r.usage.total_tokens == 46


@check
def groq_streaming():
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in gq.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        if chunk.choices
    )
    assert text == "w0 xxxxw1 xxxxw2 xxxxw3 xxxxw4 xxxx", text


@check
def groq_rate_limit_raises_rate_limit_error():
    try:
        gq.chat.completions.create(model="rate-limited", messages=[{"role": "user", "content": "hi"}])
    except groq.RateLimitError:
        return
    raise AssertionError("no RateLimitError")


passed = failed = 0
for fn in checks:
    try:
        fn()
        passed += 1
        print(f"ok      {fn.__name__}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAILED  {fn.__name__}\n{traceback.format_exc()}")
print(f"sdk checks: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
