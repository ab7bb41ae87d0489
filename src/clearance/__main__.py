"""``python -m clearance`` runs the command line."""

from clearance.cli.main import main

if __name__ == "__main__":
    main()
