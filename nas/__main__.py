from nas.cli import entry

entry()
