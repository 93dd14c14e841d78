-- GET / with the shared end-of-run report.
dofile(os.getenv("BENCH_LIB") .. "/wrk_report.lua")
