"""A minimal host app: its own workflows, Squidie journal workers, and cron payloads
delivered through procrastinate on the same PostgreSQL.

See README.md in this directory for the pattern and how to run it.
"""
