"""Command-line programs built on albert_keras: vocabulary, pretraining data, training."""
