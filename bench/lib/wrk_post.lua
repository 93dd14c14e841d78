-- POST / with a 1 MiB body, or POST_BYTES bytes (the upload app reads it all
-- and answers its length), with the shared end-of-run report.
dofile(os.getenv("BENCH_LIB") .. "/wrk_report.lua")
wrk.method = "POST"
wrk.body = string.rep("u", tonumber(os.getenv("POST_BYTES") or "") or 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
