"""Operators of nightshift (the trainer container)."""
