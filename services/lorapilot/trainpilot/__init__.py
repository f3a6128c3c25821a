"""trainpilot: the command line (and, later, the spool daemon) for training runs."""
