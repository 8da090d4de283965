import sys

from autodistill.cli import main

sys.exit(main())
