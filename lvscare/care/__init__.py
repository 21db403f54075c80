"""The care loop: probe every real server, decide the desired table, make the kernel match."""
