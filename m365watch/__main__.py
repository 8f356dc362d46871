"""Allow ``python -m m365watch``."""

from m365watch.cli import main

main()
