"""The two ways lvscare refuses to run, each with its own exit code."""


class BadInput(Exception):
    """The user gave a value we cannot use: one line naming it, exit code 2."""

    exit_code = 2


class KernelUnavailable(Exception):
    """The kernel cannot do what we need (no IPVS, no CAP_NET_ADMIN): exit code 1."""

    exit_code = 1
