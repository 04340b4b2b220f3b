"""Campaigns: schema, validation, checks, state, steps and the runner."""
