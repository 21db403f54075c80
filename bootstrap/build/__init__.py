"""Building the offline package on the operator's machine."""
