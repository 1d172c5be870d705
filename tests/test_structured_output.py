"""Structured output (a JSON schema through SGLang's grammar backend, xgrammar) and output logprobs
on the MindSpore path, against SGLang's native model on the same checkpoint."""
import json

import pytest

pytestmark = pytest.mark.slow

# Bounded values and no free whitespace, so a random tiny model finishes the object in NEW_TOKENS.
SCHEMA = {"type": "object", "properties": {"name": {"enum": ["ann", "bob", "eve"]}, "adult": {"type": "boolean"}},
          "required": ["name", "adult"], "additionalProperties": False}
PROMPTS = ["Describe a person as JSON:", "Another one:"]
NEW_TOKENS = 64
TOP = 3


def run(model_path, impl: str):
    import sglang as sgl

    engine = sgl.Engine(model_path=str(model_path), model_impl=impl, device="cpu", attention_backend="torch_native",
                        dtype="float32", disable_cuda_graph=True, max_total_tokens=4096, log_level="error",
                        random_seed=0, grammar_backend="xgrammar", constrained_json_disable_any_whitespace=True)
    try:
        constrained = engine.generate(prompt=PROMPTS, sampling_params={
            "temperature": 0, "max_new_tokens": NEW_TOKENS, "json_schema": json.dumps(SCHEMA)})
        logprobs = engine.generate(prompt=PROMPTS, sampling_params={"temperature": 0, "max_new_tokens": 8},
                                   return_logprob=True, top_logprobs_num=TOP)
        return constrained, logprobs
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def outputs(tiny_qwen3):
    return {impl: run(tiny_qwen3, impl) for impl in ("mindspore", "sglang")}


def test_json_schema_output_is_valid_and_matches_native(outputs):
    ours, native = outputs["mindspore"][0], outputs["sglang"][0]
    for o in ours:
        value = json.loads(o["text"])  # the grammar forced valid JSON of the schema's shape
        assert value["name"] in ("ann", "bob", "eve") and isinstance(value["adult"], bool), value
        assert o["meta_info"]["finish_reason"]["type"] == "stop"  # the grammar ended it, not the token limit
    assert [o["text"] for o in ours] == [o["text"] for o in native]


def test_output_logprobs_match_native(outputs):
    ours, native = outputs["mindspore"][1], outputs["sglang"][1]
    for a, b in zip(ours, native):
        la, lb = a["meta_info"]["output_token_logprobs"], b["meta_info"]["output_token_logprobs"]
        assert [t[1] for t in la] == [t[1] for t in lb]  # same tokens
        assert all(abs(x[0] - y[0]) < 1e-3 for x, y in zip(la, lb)), (la, lb)
        assert all(x[0] < 0 for x in la)  # real log-probabilities, not logits
        ta, tb = a["meta_info"]["output_top_logprobs"], b["meta_info"]["output_top_logprobs"]
        assert all(len(step) == TOP for step in ta)
        for sa, sb in zip(ta, tb):
            assert [t[1] for t in sa] == [t[1] for t in sb]
            assert all(abs(x[0] - y[0]) < 1e-3 for x, y in zip(sa, sb))
