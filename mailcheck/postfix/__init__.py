"""`mailcheck postfix` (configuration audit) and `mailcheck relay` (probes of your own server)."""
