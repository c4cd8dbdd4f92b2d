"""`python -m jkemu` (from emulator/) runs the emulator, like emulator/joinkeeper_emulator.py."""

from .server import main

main()
