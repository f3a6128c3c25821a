"""The appliance web layer every LoRA Pilot web service is built on (DESIGN §7).

`create_appliance_app` gives a Flask app that already refuses every route without a logged-in
session (only `/healthz` and the login form are open), checks a CSRF token on every state-changing
request, throttles failed logins and keeps uploads' temporary files inside the workspace.
"""

from lorapilot.web.app import OPEN_ENDPOINTS, create_appliance_app
from lorapilot.web.csrf import csrf_token

__all__ = ["OPEN_ENDPOINTS", "create_appliance_app", "csrf_token"]
