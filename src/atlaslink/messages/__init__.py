"""Standard messages: EDXL-RM 1.0 in EDXL-DE 2.0/1.0 envelopes, CAP 1.2 alerts, and their
reliable delivery to partners (docs/messages.md)."""
