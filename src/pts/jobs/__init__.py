"""Every pts command as a job: a Config and run(config) -> Summary; the CLI is a thin layer over these."""
