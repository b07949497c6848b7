import sys

from vxlan_evt.cli import main

sys.exit(main())
