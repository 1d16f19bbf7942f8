"""Server-rendered HTML report pages (``/ui``): job list, one job's report, compare view.

No JavaScript and no external resources: charts are drawn server-side from the job folder
by ``grait_engine.reporting`` and inlined. Browsers log in once with an API key (an HttpOnly
cookie); the normal ``Authorization: Bearer`` header works too.
"""

from app.ui.pages import router

__all__ = ["router"]
