"""The two ways bootstrap stops, each with its own exit code (as lvscare's)."""


class BadInput(Exception):
    """The user gave a value we cannot use: one line naming it, exit code 2."""

    exit_code = 2


class StepFailed(Exception):
    """A step could not be done on this host (kubeadm failed, a leftover blocks us): exit 1."""

    exit_code = 1
