// The Vercel AI SDK (`ai` with `@ai-sdk/openai`, versions pinned in package.json) against the
// running gateway.
//
// Run by tests/api/sdk.rs, which starts the gateway with a configuration file whose OpenAI
// provider is the test kit's FakeUpstream, and passes:
//   GATEWAY_URL   e.g. http://127.0.0.1:41234
//   GATEWAY_KEY   a key listed in the gateway's GATEWAY_API_KEYS
// and, optionally, the model names asked for (routes of the file to the OpenAI provider):
//   RESPONSES_MODEL   (default gpt-4o-mini)
//   EMBEDDING_MODEL   (default text-embedding-3-small)
// Only the base URL changes from a normal set-up. `openai(model)`, the provider's default
// language model, is its Responses API model: POST {baseURL}/responses (@ai-sdk/openai 2.x,
// createOpenAI: `createLanguageModel` returns `createResponsesModel(modelId)`), and
// `openai.embedding(model)` posts {baseURL}/embeddings with encoding_format "float". The
// expected values are the fake's documented constants (crates/testkit/src/openai.rs and
// upstream.rs). Prints one line per check and a closing 'N passed, N failed' line; exits
// non-zero on any failure.
//
//   npm ci --prefix tests/sdk/js && GATEWAY_URL=… GATEWAY_KEY=… node tests/sdk/js/check_vercel.mjs

import assert from "node:assert/strict";

import { createOpenAI } from "@ai-sdk/openai";
import { embed, embedMany, generateText, streamText } from "ai";

const URL = process.env.GATEWAY_URL;
const KEY = process.env.GATEWAY_KEY;
if (!URL || !KEY) {
  console.error("GATEWAY_URL and GATEWAY_KEY are required");
  process.exit(2);
}
const RESPONSES_MODEL = process.env.RESPONSES_MODEL ?? "gpt-4o-mini";
const EMBEDDING_MODEL = process.env.EMBEDDING_MODEL ?? "text-embedding-3-small";

// FakeUpstream's Responses API: RESPONSE_TEXT; RESPONSES_USAGE (15 in, 5 of them cached, 27
// out, 8 of them reasoning) and RESPONSES_STREAM_USAGE (11, 2, 19, 4); a stream's deltas are
// the chunks of Reply::stream().
const RESPONSE_TEXT = "Observability is knowing what your system does.";
const STREAM_DELTAS = ["w0 xxxx", "w1 xxxx", "w2 xxxx", "w3 xxxx", "w4 xxxx"];
// Embeddings: DEFAULT_EMBEDDING_DIMENSIONS, one token per word.
const EMBEDDING_DIMENSIONS = 8;

const openai = createOpenAI({ baseURL: `${URL}/v1`, apiKey: KEY });

/** The fake's vector for an input (openai.rs, `embedding_vector`), in float32 arithmetic. */
function fakeEmbedding(key, dimensions) {
  const mask = (1n << 64n) - 1n;
  let seed = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(key)) {
    seed = ((seed ^ BigInt(b)) * 0x100000001b3n) & mask;
  }
  const f = Math.fround;
  const vector = [];
  for (let i = 0; i < dimensions; i++) {
    seed = (seed + 0x9e3779b97f4a7c15n) & mask;
    let z = seed;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    z ^= z >> 31n;
    vector.push(f(f(Number(z >> 40n) / 2 ** 23) - 1));
  }
  let total = 0;
  for (const x of vector) total = f(total + f(x * x));
  const norm = f(Math.sqrt(total));
  return norm > 0 ? vector.map((x) => f(x / norm)) : vector;
}

/** A vector of JSON numbers as the float32 values they were written from. */
const asF32 = (vector) => vector.map(Math.fround);

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check("generate_text_calls_the_responses_api", async () => {
  const r = await generateText({
    model: openai(RESPONSES_MODEL),
    prompt: "What is observability?",
    maxRetries: 0,
  });
  assert.equal(r.text, RESPONSE_TEXT);
  assert.equal(r.finishReason, "stop");
  assert.equal(r.response.modelId, RESPONSES_MODEL);
  assert.equal(r.providerMetadata?.openai?.responseId, "resp_fake_1");
  assert.deepEqual(
    {
      input: r.usage.inputTokens,
      output: r.usage.outputTokens,
      total: r.usage.totalTokens,
      reasoning: r.usage.reasoningTokens,
      cached: r.usage.cachedInputTokens,
    },
    { input: 15, output: 27, total: 42, reasoning: 8, cached: 5 },
  );
});

check("stream_text_streams_the_responses_api", async () => {
  let streamError;
  const r = streamText({
    model: openai(RESPONSES_MODEL),
    prompt: "Stream please",
    maxRetries: 0,
    onError: ({ error }) => {
      streamError = error;
    },
  });
  const pieces = [];
  for await (const piece of r.textStream) pieces.push(piece);
  assert.equal(streamError, undefined, `stream error: ${streamError}`);
  assert.deepEqual(pieces, STREAM_DELTAS);
  assert.equal(await r.text, STREAM_DELTAS.join(""));
  assert.equal(await r.finishReason, "stop");
  const usage = await r.usage;
  assert.deepEqual(
    {
      input: usage.inputTokens,
      output: usage.outputTokens,
      total: usage.totalTokens,
      reasoning: usage.reasoningTokens,
      cached: usage.cachedInputTokens,
    },
    { input: 11, output: 19, total: 30, reasoning: 4, cached: 2 },
  );
  assert.equal((await r.providerMetadata)?.openai?.responseId, "resp_fake_stream_1");
});

check("embed_one_value", async () => {
  const r = await embed({
    model: openai.embedding(EMBEDDING_MODEL),
    value: "alpha beta",
    maxRetries: 0,
  });
  assert.equal(r.embedding.length, EMBEDDING_DIMENSIONS);
  assert.deepEqual(asF32(r.embedding), fakeEmbedding("alpha beta", EMBEDDING_DIMENSIONS));
  assert.equal(r.usage.tokens, 2);
});

check("embed_many_values", async () => {
  const values = ["alpha beta", "gamma"];
  const r = await embedMany({
    model: openai.embedding(EMBEDDING_MODEL),
    values,
    maxRetries: 0,
  });
  assert.equal(r.embeddings.length, 2);
  r.embeddings.forEach((embedding, i) => {
    assert.deepEqual(asF32(embedding), fakeEmbedding(values[i], EMBEDDING_DIMENSIONS), values[i]);
  });
  assert.notDeepEqual(r.embeddings[0], r.embeddings[1]);
  assert.equal(r.usage.tokens, 3);
});

let passed = 0;
let failed = 0;
for (const [i, [name, fn]] of checks.entries()) {
  const number = String(i + 1).padStart(2);
  try {
    await fn();
    passed += 1;
    console.log(`${number}. ok      ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`${number}. FAILED  ${name}\n${error?.stack ?? error}`);
  }
}
console.log(`vercel checks: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
