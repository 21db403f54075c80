"""Import a library's submodules without running its package `__init__` first.

pyroute2's `__init__` imports every netlink family it has (conntrack, nl80211, ndb, plan9,
WireGuard...) and prometheus_client's the whole exposition stack with its default
collectors: about 7 MiB and 200 modules the daemon never uses, on every node, and a good
part of its start-up time. lvscare imports the submodules it needs by their full names
(`pyroute2.ipvs`, `prometheus_client.metrics`); the package module stands in empty until
somebody asks it for a name it does not have, and then runs its real `__init__`, so
`from pyroute2 import IPRoute` anywhere else in the process still works.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading

_lock = threading.RLock()
_pending: set[str] = set()  # packages whose __init__ has not run yet
_library_path_restored = False


def defer_package_init(name: str) -> None:
    """Put `name` in sys.modules with its `__init__` deferred; a no-op if it is imported."""
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return  # not installed or not a package: the real import will say so
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def __getattr__(attr: str) -> object:
            with _lock:
                if name in _pending:
                    sub = f"{name}.{attr}"
                    if not attr.startswith("__") and importlib.util.find_spec(sub):
                        return importlib.import_module(sub)
                    _pending.discard(name)  # first: the __init__ may ask for its own names
                    loader.exec_module(module)
            try:
                return module.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

        setattr(module, "__getattr__", __getattr__)  # noqa: B010 (a module attribute)
        _pending.add(name)
        sys.modules[name] = module


def init_deferred(name: str) -> bool:
    """Whether package `name` still stands in without having run its `__init__`."""
    return name in _pending


def prefer_pure_python_frozenlist() -> None:
    """frozenlist's C extension is C++: loading it maps libstdc++ (0.9 MiB resident) for the
    few lists aiohttp freezes once per client session. Its documented switch, before the
    first import of aiohttp."""
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")


def restore_library_path() -> None:
    """In a PyInstaller build (the offline package's one-file `bootstrap` and `lvscare`,
    the image's lvscare) the bootloader points LD_LIBRARY_PATH at the bundled libraries and
    keeps the caller's in LD_LIBRARY_PATH_ORIG. Programs we start (modprobe, nft, kubeadm,
    a shell) must find the host's own libraries, not ours: the caller's value goes back
    for them. This process has loaded what it needs by then."""
    global _library_path_restored
    if not getattr(sys, "frozen", False) or _library_path_restored:
        return
    _library_path_restored = True
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = original
