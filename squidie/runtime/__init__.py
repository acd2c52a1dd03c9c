"""Running workflows: start, execute_next (claims, leases, heartbeats), planning,
retries, recovery, and the worker loop. Talks to storage only through the port."""
