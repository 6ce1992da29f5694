import sys

from openalgo_proxy.cli import main

sys.exit(main())
