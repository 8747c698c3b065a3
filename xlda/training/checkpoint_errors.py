"""The one error type of checkpoint saving and loading (what the CLIs report in one line)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial, corrupted or does not fit the model."""
