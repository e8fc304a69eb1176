"""`python -m colorcli.cli`, as before the CLI became a package (`python -m colorcli` is the usual way)."""

from colorcli.cli import main

if __name__ == "__main__":
    main()
