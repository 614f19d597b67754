"""`python -m elser_server` runs the service, like `elser-server`."""

from elser_server.cli import main

main()
