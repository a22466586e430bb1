"""Command-line interface: ``paraspeechclap <subcommand>``."""
