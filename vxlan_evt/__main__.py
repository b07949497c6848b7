import sys

from vxlan_evt.cli.main import main

sys.exit(main())
