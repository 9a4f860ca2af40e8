"""The error every command-line program turns into one line on stderr and exit status 2: bad input.

Raised where the problem is found (a package reading a dataset, a script checking its flags) so that scripts need
no error classes of their own and the exit status means the same in each of them.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user (a file, a folder, a flag); the message names it and says what is wrong."""
