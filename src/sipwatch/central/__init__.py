"""The central service: sensor registry, exactly-once ingest, reports, dashboard (issue 5)."""
