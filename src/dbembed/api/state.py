"""Per-process API state: one ``Dbembed`` service (its connection pool, opened and migrated on
first use, and its embedding providers, loaded once) and the metrics.

Opening lazily keeps ``create_app`` free of side effects, so the same app object
works under uvicorn, under TestClient and in a Lambda cold start alike.  The service is
shared by the request threads (``dbembed.service`` documents why that is safe).
"""

from __future__ import annotations

from dbembed.api.metrics import Metrics
from dbembed.config import Settings
from dbembed.service import Dbembed


class AppState:
    """What every request of one app shares: ``settings``, ``service`` (pooled) and ``metrics``."""

    def __init__(self, settings: Settings, service: Dbembed | None = None) -> None:
        self.settings = settings
        self.service = service if service is not None else Dbembed(settings, pooled=True)
        self.metrics = Metrics()

    def close(self) -> None:
        """Close the service's pool (a later request opens a new one)."""
        self.service.close()
