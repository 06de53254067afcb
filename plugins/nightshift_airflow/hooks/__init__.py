"""Hooks of nightshift: the lake's connection."""
