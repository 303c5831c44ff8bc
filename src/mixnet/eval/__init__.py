"""Evaluation (top-1/top-k, loss, images/s) and prediction (top-k classes of image files)."""
