"""`python -m colorcli` (and `torchrun -m colorcli`) entry point."""

from colorcli.cli import main

if __name__ == "__main__":
    main()
