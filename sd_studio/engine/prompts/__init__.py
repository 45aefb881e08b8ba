"""Prompts: tokens and 75-token chunks, A1111 emphasis weights, text embeddings (one implementation for all)."""
