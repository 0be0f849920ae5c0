"""pandas UDFs that run inside executors (scoring, text encoding)."""
