"""What the daemon tells the outside: status, /healthz and /readyz, metrics, systemd."""
