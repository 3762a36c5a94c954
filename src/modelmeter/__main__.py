import sys

from modelmeter.cli import main

sys.exit(main())
