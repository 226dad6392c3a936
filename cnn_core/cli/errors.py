"""The CLI's error type: a mistake the user can fix, reported as one line on stderr with exit status 2."""


class UsageError(Exception):
    """A user error (bad option, missing or unreadable file, data that do not fit the model)."""


EXIT_OK = 0
EXIT_FAILED = 1       # training ran but failed (e.g. the loss diverged)
EXIT_USAGE = 2        # user error, like argparse's own
EXIT_INTERRUPTED = 130  # Ctrl-C, the shell's 128 + SIGINT
