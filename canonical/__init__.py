"""The canonical model and the exception root: a leaf that imports nothing of ours."""
