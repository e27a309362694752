"""Ferry's FastAPI application: one app factory for the desktop's local API and the shared server."""

__version__ = "0.1.0"
