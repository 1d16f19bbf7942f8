"""Per-tenant webhooks for job status changes.

``service``: create/list/get/delete and the delivery log (tenant-scoped, URL checks against
``GRAIT_WEBHOOK_ALLOWED_HOSTS``). ``outbox``: one delivery row per subscribed webhook,
written in the transaction of the status change. ``dispatch``: sends due deliveries
(signed by ``signing``), retries with back-off, and the background loop of the API process.
"""
