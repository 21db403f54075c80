"""Asking a real server whether it is healthy: HTTP(S) probes, on a thread of their own."""
