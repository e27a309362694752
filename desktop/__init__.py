"""The double-clickable Ferry app: local API in a thread, sync, and the pywebview window."""
