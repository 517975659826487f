from mrseg.cli import main

raise SystemExit(main())
