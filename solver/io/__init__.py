"""Result directories, field and table writers, checkpoints, logging."""
