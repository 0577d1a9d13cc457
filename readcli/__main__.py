"""`python -m readcli` runs the command-line interface."""

from readcli.cli import main

if __name__ == "__main__":
    main()
