"""The two ways bootstrap stops, each with its own exit code (as lvscare's).

BadInput is lvscare's own class, so a value lvscare refuses (an address, a flag of the
static pod) stops bootstrap the same way, with no translation between the two.
"""

from lvscare.errors import BadInput

__all__ = ["BadInput", "StepFailed"]


class StepFailed(Exception):
    """A step could not be done on this host (kubeadm failed, a leftover blocks us): exit 1."""

    exit_code = 1
