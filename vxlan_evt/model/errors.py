"""The two kinds of failure, as h11 splits local and remote protocol errors.

`UserError` means the request (a network option, a Docker call) is wrong: the
message goes back to the user as Docker's `Err` verbatim, so it must name the
culprit and the allowed form. `SystemFailure` means we (or the kernel) failed
on a valid request: it is logged with context and reported as a 500.
"""


class VxlanEvtError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(VxlanEvtError):
    """The caller's input is wrong; the message is shown to the user as is."""


class InvalidOption(UserError):
    """A network option or daemon flag has a bad key, value or combination."""


class Conflict(UserError):
    """A valid request clashes with what exists (VNI in use, foreign link)."""


class NotFound(UserError):
    """The request names a network or endpoint we do not know."""


class SystemFailure(VxlanEvtError):
    """A valid request failed in the system (kernel, disk)."""
