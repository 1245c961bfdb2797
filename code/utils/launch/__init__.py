"""run, con, rerun: the commands that start training (no torch here)."""
