"""Question answering (SQuAD 1.1 / 2.0): task.py names the pieces."""
