"""Batch runs: many domains in one run, reports kept atomically, and what changed since."""
