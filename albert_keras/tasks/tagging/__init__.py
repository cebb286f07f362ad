"""Word tagging (part of speech, named entities): task.py names the pieces."""
