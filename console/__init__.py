"""``llmpulse console``: the triage console, from an alert to its cause in a browser.

Server-rendered pages (Starlette and Jinja2, no front-end build, no script at all): the health
of every (service, feature), the incident page of each firing alert (chart with baseline,
limits and the alert's start; scope; what changed; the flagged samples to label; the labelled
failures as eval cases), the judge's agreement with the human labels, and the captured
sessions (a flagged sample's page links to its conversation, turn by turn). It reads the flagged
samples through :class:`~llmpulse.processor.quality.store.FlaggedStore`, charts and health
from Prometheus' HTTP API and firing alerts from Alertmanager's. Its Alertmanager webhook
builds a triage bundle per firing alert and forwards an enriched notification.

Modules: ``settings`` (one immutable settings object), ``sources`` (the Prometheus and
Alertmanager clients), ``health`` (the home page's figures), ``incident`` (scope, what changed,
triage), ``svg`` (the
server-side chart), ``bundle`` (alert bundles and their notification formats), ``access``
(loopback, token, cross-site refusal), ``app`` (the routes), ``session_pages`` (a sample's
page, the sessions and a session's page) and ``cli`` (``llmpulse console``).
The judge page's figures come from :mod:`llmpulse.processor.quality.agreement`, which
``llmpulse judge eval`` prints too.
"""

__all__ = [
    "access",
    "app",
    "bundle",
    "cli",
    "health",
    "incident",
    "session_pages",
    "settings",
    "sources",
    "svg",
]
