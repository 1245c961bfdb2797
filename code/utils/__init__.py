"""Our own packages for the template; files named _*.py patch existing packages."""
