"""Scripts the tests run in subprocesses (crash and concurrency writers)."""
