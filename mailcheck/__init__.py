"""mailcheck: why mail is not delivered, and how to fix it."""

__version__ = "0.1.0"
