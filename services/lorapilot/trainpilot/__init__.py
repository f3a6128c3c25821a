"""trainpilot: the `trainpilot` command line and the spool daemon that runs training jobs."""
