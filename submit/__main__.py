"""``python -m submit``: the same CLI as ``mnist-submit``."""

from submit.cli import main

if __name__ == "__main__":
    main()
