"""The ``ctus`` command line: argument parsing and one module per command.

``main`` dispatches; ``cmd_<name>`` parses its options and calls the domain
functions of the other wings, so no domain module depends on argparse. Maps
errors to exit codes (0 done, 2 bad input, 1 unexpected). The only planner
wing that may import ``sample_data`` (``ctus sample``).
"""
