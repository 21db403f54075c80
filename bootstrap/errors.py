"""The ways bootstrap stops, each with its own exit code (the first two as lvscare's).

BadInput is lvscare's own class, so a value lvscare refuses (an address, a flag of the
static pod) stops bootstrap the same way, with no translation between the two.
"""

from lvscare.errors import BadInput

__all__ = ["BadInput", "Interrupted", "StepFailed"]


class StepFailed(Exception):
    """A step could not be done on this host (kubeadm failed, a leftover blocks us): exit 1."""

    exit_code = 1


class Interrupted(StepFailed):
    """The operator stopped the run (Ctrl-C): exit 130, as a shell reports SIGINT."""

    exit_code = 130
