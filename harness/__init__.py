"""Runnable verification: smoke, resilience, soak, load, bench and read costs."""
