"""seqcore's command line called in this process, as the tests call it."""

from seqcore import cli


def cli_exit(argv) -> int:
    """cli.main(argv)'s exit status, argparse's exits (SystemExit) included."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code
