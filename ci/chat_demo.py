"""Send one chat completion (and one streamed) to an OpenAI-compatible server and print them."""
import argparse

from openai import OpenAI


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:30000/v1")
    ap.add_argument("--model", default="tiny-qwen3")
    ap.add_argument("--question", default="Hello, how are you today?")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="none")
    messages = [{"role": "user", "content": args.question}]
    r = client.chat.completions.create(model=args.model, messages=messages, max_tokens=24, temperature=0)
    print(f"question: {args.question}")
    print(f"answer:   {r.choices[0].message.content!r}")
    print(f"usage:    {r.usage.prompt_tokens} prompt + {r.usage.completion_tokens} completion tokens")
    print("(random weights: the words are noise; the path through SGLang + MindSpore is real)")
    stream = client.chat.completions.create(model=args.model, messages=messages, max_tokens=24, temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print(f"streamed: {text!r} ({'same' if text == r.choices[0].message.content else 'DIFFERENT'} as unstreamed)")


if __name__ == "__main__":
    main()
