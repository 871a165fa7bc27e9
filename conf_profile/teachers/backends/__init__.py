"""Teacher backends: lexicon (CPU), openai (any OpenAI-compatible server), vllm (offline GPU), hf (local)."""
