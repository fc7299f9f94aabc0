from kafka_bench.runner import main

raise SystemExit(main())
