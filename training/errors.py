"""The one exception type for problems a person can fix themselves.

The CLI turns it into a one-line message and exit code 2; the UI turns it into a gr.Error.
Anything else escaping the library is a bug in talklike, not in the user's input.
"""


class UserError(Exception):
    """A problem with the user's input or settings, phrased so they can act on it."""
