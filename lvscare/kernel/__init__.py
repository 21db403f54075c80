"""The kernel: the IPVS table as data and its netlink door, set-up, and the VIP's host side."""
