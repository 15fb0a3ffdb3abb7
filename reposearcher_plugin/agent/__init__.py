"""Layer 3: the search loop: chat format, policies (LLM via litellm, retrieval default, scripted), answers."""
