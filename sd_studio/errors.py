"""SDStudioError: the one kind of error whose message is written for the user."""


class SDStudioError(Exception):
    """A failure the user can act on; str(error) is one clear sentence, shown as it is."""


class FileError(SDStudioError):
    """A file could not be read or written; the message names the reason."""


class ModelError(SDStudioError):
    """A model could not be found or loaded."""


class GenerationError(SDStudioError):
    """A generation could not run or did not finish (bad parameters, out of memory, cancelled)."""


class Cancelled(GenerationError):
    """The user cancelled a long job; nothing was changed."""
