import sys

from alertbutler.cli import main

sys.exit(main())
