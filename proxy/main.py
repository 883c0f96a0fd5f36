"""The ASGI app uvicorn serves, configured from ``AICORE_*`` environment variables.

Run: ``python -m proxy.server`` (uvicorn with the proxy's header deadline and caps, see
``proxy/server.py``); plain ``uvicorn proxy.main:app`` works but lacks them.
"""

from proxy import logsafe
from proxy.app import create_app

logsafe.install()  # before the server logs its first request
app = create_app()

__all__ = ["app", "create_app"]
