from capplan.cli import main

raise SystemExit(main())
