import sys

from spikepack.cli import main

sys.exit(main())
