-- wrk script for the echo services: a ~100-byte JSON POST (see benches/echo/run.sh).
wrk.method = "POST"
wrk.path = "/bench/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":12345,"name":"rrlb-bench","tags":["alpha","beta","gamma"],"ok":true,"ratio":0.25,"next":null}'
