"""The ASGI app uvicorn serves, configured from ``AICORE_*`` environment variables.

Run: ``uvicorn proxy.main:app --host 127.0.0.1 --port 8000``.
"""

from proxy.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
