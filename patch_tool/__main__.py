import sys

from patch_tool.cli import main

sys.exit(main())
