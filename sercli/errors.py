"""One exception root for everything sercli raises on purpose.

Messages are one line and name the file and the reason, so the CLI can print them as is.
"""


class SercliError(Exception):
    """Root of sercli's own errors."""


class AudioError(SercliError):
    """A file could not be read as audio, or holds nothing to classify."""


class ModelError(SercliError):
    """A model file is missing, corrupt, unsafe or does not match its pinned hash."""


class CorpusError(SercliError):
    """A data folder or manifest cannot be used for training or evaluation."""
