"""The report both import-cycle checks print (check-cycles.py for the Rust crate,
check-cycles-python.py for a Python package), and their exit status."""


def report(units, where, count, uses, uses_word, listing):
    """Prints "no import cycle ..." with how much was read, or each cycle (`listing`: a heading
    and the lines that make it, as `file:line  (a -> b)`); 0 when there is none, else 1."""
    if not listing:
        print(f"no import cycle between the {count} {units} of {where} ({uses} {uses_word} read)")
        return 0
    print(f"{len(listing)} import cycle(s) between the {units} of {where}:")
    for heading, evidence in listing:
        print("  " + heading)
        for line in evidence:
            print("      " + line)
    return 1
