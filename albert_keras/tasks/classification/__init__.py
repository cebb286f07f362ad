"""Sentence (pair) classification and regression: task.py names the pieces."""
