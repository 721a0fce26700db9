from pycontain.cli import entry

entry()
