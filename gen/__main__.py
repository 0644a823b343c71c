import sys

try:
    from spikepack.cli import main
except KeyboardInterrupt:               # Ctrl-C while the command line is still loading
    print("spikepack: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
