-- POST / with a 1 MiB body (the upload app reads it all and answers its
-- length), with the shared end-of-run report.
dofile(os.getenv("BENCH_LIB") .. "/wrk_report.lua")
wrk.method = "POST"
wrk.body = string.rep("u", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
