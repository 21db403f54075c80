"""lvscare: keeps the kernel IPVS virtual server for the apiserver on healthy masters."""

__version__ = "0.1.0"
