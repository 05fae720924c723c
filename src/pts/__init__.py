"""Pivotal Token Search."""
