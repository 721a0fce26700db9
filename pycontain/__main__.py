import sys

from pycontain.cli import main

sys.exit(main())
