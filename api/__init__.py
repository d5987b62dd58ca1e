"""The HTTP layer (FastAPI): parses and bounds requests, asks geo_engine, answers RFC 9457
problems. No SQL and no business rule lives here."""
