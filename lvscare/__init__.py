"""lvscare: keeps the kernel IPVS virtual server for the apiserver on healthy masters."""

from lvscare.imports import (
    defer_package_init,
    prefer_pure_python_frozenlist,
    restore_library_path,
)

__version__ = "0.1.0"

# Before anything imports them: lvscare uses a few of their submodules (see imports.py).
defer_package_init("pyroute2")
defer_package_init("prometheus_client")
prefer_pure_python_frozenlist()
restore_library_path()  # for the programs we run, when we run as a PyInstaller build
