"""joinkeeper-json's subcommands, one module per group (the entry point and the command line:
../joinkeeper-json.py and cli.py). Runs on Python 3.6+ (the oldest python3 on supported node
images); see ../joinkeeper-json.py for the secret rules every subcommand keeps."""
