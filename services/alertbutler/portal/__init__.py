"""The portal: a web site and REST API over the L1 database, a night and the live alert topic.

    app = create_app(PortalSettings(l1db_url=..., night_root=..., bootstrap=..., alert_topic=...))

``alertbutler serve`` builds the settings from the configuration and runs the app with uvicorn.
"""

from alertbutler.portal.app import create_app
from alertbutler.portal.data import PortalSettings

__all__ = ["PortalSettings", "create_app"]
