package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestEchoReturnsEveryJSONKindByteExact(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	cases := []struct {
		name string
		body string
	}{
		{"object", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`},
		{"empty object", `{}`},
		{"array", `[1,"two",3.0,{"four":4},[]]`},
		{"empty array", `[]`},
		{"string", `"hello"`},
		{"string escapes", `"tab\there \"q\" \\ \/ \b\f\n\r \u00e9 \ud83d\ude00 \u003c"`},
		{"raw UTF-8", `{"emoji":"😀","accent":"é","cjk":"漢字"}`},
		{"big integer", `123456789012345678901234567890123456789`},
		{"precise decimal", `0.1000000000000000055511151231257827021181583404541015625`},
		{"exponent", `-1.5E+300`},
		{"out of float range", `1e400`},
		{"negative zero", `-0`},
		{"zero", `0`},
		{"true", `true`},
		{"false", `false`},
		{"null", `null`},
		{"surrounding whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n "},
		{"duplicate keys", `{"a":1,"a":2}`},
		{"deep nesting", strings.Repeat("[", 1000) + strings.Repeat("]", 1000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.do(t, http.MethodPost, "/echo", []byte(tc.body))
			expect(t, res, http.StatusOK, tc.body)
			if got, want := res.header.Get("content-length"), fmt.Sprint(len(tc.body)); got != want {
				t.Errorf("content-length = %s, want %s", got, want)
			}
		})
	}
}

func TestEchoOnAnyPath(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	const body = `{"path":"any"}`
	for _, path := range []string{"/", "/echo", "/a/b/c", "/health/", "/healthz", "/_chaos", "/x?y=1", "//double//slash", "/a/../b", "/%2F"} {
		t.Run(path, func(t *testing.T) {
			expect(t, ts.do(t, http.MethodPost, path, []byte(body)), http.StatusOK, body)
		})
	}
}

func TestEchoRejectsInvalidJSON(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	cases := []struct {
		name string
		body string
	}{
		{"whitespace only", " \n\t "},
		{"truncated object", `{"a":1`},
		{"missing value", `{"a":}`},
		{"trailing comma", `[1,2,]`},
		{"single quotes", `{'a':1}`},
		{"bare word", `hello`},
		{"partial literal", `tru`},
		{"NaN", `NaN`},
		{"two values", `1 2`},
		{"trailing garbage", `{"a":1}x`},
		{"leading zero", `01`},
		{"unescaped control character", "\"a\x01b\""},
		{"invalid escape", `"\x"`},
		{"invalid UTF-8", "\"\xff\xfe\""},
		{"byte order mark", "\xef\xbb\xbf{}"},
		{"comment", `{"a":1 /* no */}`},
		{"unbalanced", `[[]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.do(t, http.MethodPost, "/", []byte(tc.body))
			if res.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%v)", res.status, res)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(res.body, &e); err != nil || !strings.HasPrefix(e.Error, "invalid JSON: ") {
				t.Errorf(`body %s, want {"error":"invalid JSON: <detail>"}`, res.body)
			}
		})
	}
	t.Run("empty body", func(t *testing.T) {
		expect(t, ts.do(t, http.MethodPost, "/", []byte{}), http.StatusBadRequest, `{"error":"invalid JSON: empty body"}`)
	})
	t.Run("no body", func(t *testing.T) {
		expect(t, ts.do(t, http.MethodPost, "/", nil), http.StatusBadRequest, `{"error":"invalid JSON: empty body"}`)
	})
}

func TestBodyLimit(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	const tooLarge = `{"error":"body exceeds 1048576 bytes"}`

	t.Run("exactly 1 MiB with content-length", func(t *testing.T) {
		body := jsonString(maxBodyBytes)
		expect(t, ts.do(t, http.MethodPost, "/", body), http.StatusOK, string(body))
	})
	t.Run("1 MiB + 1 with content-length", func(t *testing.T) {
		expect(t, ts.do(t, http.MethodPost, "/", jsonString(maxBodyBytes+1)), http.StatusRequestEntityTooLarge, tooLarge)
	})
	t.Run("exactly 1 MiB chunked", func(t *testing.T) {
		body := jsonString(maxBodyBytes)
		c := dialRaw(t, ts.addr)
		res := c.roundTrip(t, http.MethodPost, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			string(chunked(body, 64<<10))+"0\r\n\r\n")
		checkCommon(t, res, ts.name)
		expect(t, res, http.StatusOK, string(body))
	})
	t.Run("1 MiB + 1 chunked", func(t *testing.T) {
		// All data chunks but no terminating chunk: the server must answer once it has counted
		// limit + 1 bytes, without waiting for the end of the body.
		body := jsonString(maxBodyBytes + 1)
		c := dialRaw(t, ts.addr)
		res := c.roundTrip(t, http.MethodPost, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			string(chunked(body[:maxBodyBytes], 64<<10))+string(chunked(body[maxBodyBytes:], 64<<10)))
		checkCommon(t, res, ts.name)
		expect(t, res, http.StatusRequestEntityTooLarge, tooLarge)
	})
	t.Run("content-length checked before reading", func(t *testing.T) {
		// The declared length alone is refused: no body byte is ever sent.
		c := dialRaw(t, ts.addr)
		res := c.roundTrip(t, http.MethodPost, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
		checkCommon(t, res, ts.name)
		expect(t, res, http.StatusRequestEntityTooLarge, tooLarge)
	})
	t.Run("oversized chunked chaos update", func(t *testing.T) {
		cts := startServer(t, testConfig(withChaos), nil)
		expect(t, cts.do(t, http.MethodPost, chaosPath, jsonString(maxBodyBytes+1)), http.StatusRequestEntityTooLarge, tooLarge)
	})
}

func TestReadBodyBuffersAtMostLimitPlusOne(t *testing.T) {
	for _, contentLength := range []int64{-1, maxBodyBytes + 1, 1 << 30} {
		t.Run(fmt.Sprint(contentLength), func(t *testing.T) {
			body := &countingReader{}
			req := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(body))
			req.ContentLength = contentLength
			rec := httptest.NewRecorder()
			newServer(testConfig()).ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", rec.Code)
			}
			limit := int64(0) // a declared length over the limit is refused unread
			if contentLength < 0 {
				limit = maxBodyBytes + 1
			}
			if n := body.count(); n > limit {
				t.Errorf("read %d body bytes, want at most %d", n, limit)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	plain := startServer(t, testConfig(), nil)
	chaos := startServer(t, testConfig(withChaos), nil)
	cases := []struct {
		server *testServer
		method string
		path   string
		allow  string
	}{
		{plain, http.MethodGet, "/", "POST"},
		{plain, http.MethodGet, "/echo", "POST"},
		{plain, http.MethodPut, "/echo", "POST"},
		{plain, http.MethodPatch, "/echo", "POST"},
		{plain, http.MethodDelete, "/echo", "POST"},
		{plain, http.MethodOptions, "/echo", "POST"},
		{plain, http.MethodHead, "/echo", "POST"},
		{plain, http.MethodGet, chaosPath, "POST"}, // chaos off: an echo path
		{plain, http.MethodDelete, chaosPath, "POST"},
		{plain, http.MethodPost, healthPath, "GET"},
		{plain, http.MethodPut, healthPath, "GET"},
		{plain, http.MethodDelete, healthPath, "GET"},
		{chaos, http.MethodGet, "/echo", "POST"},
		{chaos, http.MethodPost, healthPath, "GET"},
		{chaos, http.MethodPut, chaosPath, "GET, POST, DELETE"},
		{chaos, http.MethodPatch, chaosPath, "GET, POST, DELETE"},
		{chaos, http.MethodHead, chaosPath, "GET, POST, DELETE"},
	}
	for _, tc := range cases {
		chaosOn := map[bool]string{true: "chaos", false: "plain"}[tc.server == chaos]
		t.Run(chaosOn+" "+tc.method+" "+tc.path, func(t *testing.T) {
			var body []byte
			if tc.method == http.MethodPut || tc.method == http.MethodPatch {
				body = []byte(`{"a":1}`)
			}
			res := tc.server.do(t, tc.method, tc.path, body)
			want := `{"error":"method not allowed"}`
			if tc.method == http.MethodHead {
				want = ""
			}
			expect(t, res, http.StatusMethodNotAllowed, want)
			if got := res.header.Get("allow"); got != tc.allow {
				t.Errorf("allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	cases := []struct {
		name   string
		cfg    config
		method string
		want   string
	}{
		{"default name", testConfig(), http.MethodGet, `{"status":"ok","service":"echo-go"}`},
		{"HEAD like GET", testConfig(), http.MethodHead, ``},
		{"SERVICE_NAME", testConfig(func(c *config) { c.Name = `go "blue"` }), http.MethodGet, `{"status":"ok","service":"go \"blue\""}`},
		{"not delayed", testConfig(func(c *config) { c.DelayMS = maxDelayMS }), http.MethodGet, `{"status":"ok","service":"echo-go"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.cfg, func(s *server) {
				s.sleep = func(context.Context, time.Duration) error {
					t.Error("/health must not be delayed")
					return nil
				}
			})
			expect(t, ts.do(t, tc.method, healthPath, nil), http.StatusOK, tc.want)
		})
	}
	t.Run("unhealthy", func(t *testing.T) {
		ts := startServer(t, testConfig(withChaos), nil)
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"healthy":false}`))
		expect(t, ts.do(t, http.MethodGet, healthPath, nil), http.StatusServiceUnavailable, `{"status":"unhealthy","service":"echo-go"}`)
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"healthy":true}`))
		expect(t, ts.do(t, http.MethodGet, healthPath, nil), http.StatusOK, `{"status":"ok","service":"echo-go"}`)
	})
}

func TestChaosOffByDefault(t *testing.T) {
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Chaos {
		t.Fatal("chaos enabled without ECHO_CHAOS")
	}
	cfg.Host, cfg.Port = "127.0.0.1", 0
	ts := startServer(t, cfg, nil)
	// /_chaos is an ordinary echo path: the body is echoed, nothing changes.
	for _, body := range []string{`{"healthy":false}`, `{"fail_rate":1}`, `{"delay_ms":600000}`} {
		expect(t, ts.do(t, http.MethodPost, chaosPath, []byte(body)), http.StatusOK, body)
	}
	expect(t, ts.do(t, http.MethodGet, healthPath, nil), http.StatusOK, `{"status":"ok","service":"echo-go"}`)
	expect(t, ts.do(t, http.MethodPost, "/", []byte(`[1]`)), http.StatusOK, `[1]`)
}

func TestChaosRoutes(t *testing.T) {
	ts := startServer(t, testConfig(withChaos, func(c *config) { c.DelayMS = 3 }), func(s *server) {
		s.sleep = func(context.Context, time.Duration) error {
			t.Error("chaos routes and /health must not be delayed")
			return nil
		}
	})
	const initial = `{"delay_ms":3,"fail_rate":0,"healthy":true}`
	steps := []struct {
		method string
		body   string
		want   string
		health int
	}{
		{http.MethodGet, "", initial, http.StatusOK},
		{http.MethodPost, `{}`, initial, http.StatusOK},
		{http.MethodPost, `{"delay_ms":500}`, `{"delay_ms":500,"fail_rate":0,"healthy":true}`, http.StatusOK},
		{http.MethodPost, `{"fail_rate":0.25}`, `{"delay_ms":500,"fail_rate":0.25,"healthy":true}`, http.StatusOK},
		{http.MethodPost, `{"healthy":false}`, `{"delay_ms":500,"fail_rate":0.25,"healthy":false}`, http.StatusServiceUnavailable},
		{http.MethodGet, "", `{"delay_ms":500,"fail_rate":0.25,"healthy":false}`, http.StatusServiceUnavailable},
		{http.MethodPost, `{"delay_ms":600000,"fail_rate":1,"healthy":true}`, `{"delay_ms":600000,"fail_rate":1,"healthy":true}`, http.StatusOK},
		{http.MethodPost, ` {"delay_ms":0,"fail_rate":0.0} `, `{"delay_ms":0,"fail_rate":0,"healthy":true}`, http.StatusOK},
		{http.MethodPost, `{"delay_ms":5e2}`, `{"delay_ms":500,"fail_rate":0,"healthy":true}`, http.StatusOK},
		{http.MethodPost, `{"delay_ms":2.0,"healthy":false}`, `{"delay_ms":2,"fail_rate":0,"healthy":false}`, http.StatusServiceUnavailable},
		{http.MethodDelete, "", initial, http.StatusOK},
		{http.MethodGet, "", initial, http.StatusOK},
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%d %s %s", i, st.method, st.body), func(t *testing.T) {
			var body []byte
			if st.method == http.MethodPost {
				body = []byte(st.body)
			}
			expect(t, ts.do(t, st.method, chaosPath, body), http.StatusOK, st.want)
			if got := ts.do(t, http.MethodGet, healthPath, nil).status; got != st.health {
				t.Errorf("/health answered %d, want %d", got, st.health)
			}
		})
	}
}

func TestChaosRejectsBadUpdates(t *testing.T) {
	ts := startServer(t, testConfig(withChaos), nil)
	const state = `{"delay_ms":7,"fail_rate":0.25,"healthy":true}`
	expect(t, ts.do(t, http.MethodPost, chaosPath, []byte(`{"delay_ms":7,"fail_rate":0.25}`)), http.StatusOK, state)

	cases := []struct {
		body    string
		mention string // the error must contain this
	}{
		{``, "invalid JSON"},
		{`{`, "invalid JSON"},
		{`{"delay_ms":}`, "invalid JSON"},
		{`[]`, "object"},
		{`null`, "object"},
		{`"delay_ms"`, "object"},
		{`42`, "object"},
		{`{"delay_ms":-1}`, "delay_ms"},
		{`{"delay_ms":600001}`, "delay_ms"},
		{`{"delay_ms":1.5}`, "delay_ms"},
		{`{"delay_ms":"5"}`, "delay_ms"},
		{`{"delay_ms":null}`, "delay_ms"},
		{`{"delay_ms":true}`, "delay_ms"},
		{`{"delay_ms":1e400}`, "delay_ms"},
		{`{"fail_rate":1.01}`, "fail_rate"},
		{`{"fail_rate":-0.1}`, "fail_rate"},
		{`{"fail_rate":"0.5"}`, "fail_rate"},
		{`{"fail_rate":null}`, "fail_rate"},
		{`{"fail_rate":[0.5]}`, "fail_rate"},
		{`{"healthy":"false"}`, "healthy"},
		{`{"healthy":0}`, "healthy"},
		{`{"healthy":null}`, "healthy"},
		{`{"bogus":1}`, "bogus"},
		{`{"Delay_ms":1}`, "Delay_ms"},
		{`{"delay_ms":1,"fail_rate":0.5,"healthy":false,"extra":true}`, "extra"},
		{`{"delay_ms":1,"fail_rate":2}`, "fail_rate"},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			res := ts.do(t, http.MethodPost, chaosPath, []byte(tc.body))
			var e struct{ Error string }
			if err := json.Unmarshal(res.body, &e); res.status != http.StatusBadRequest || err != nil || !strings.Contains(e.Error, tc.mention) {
				t.Errorf(`got %v, want 400 {"error":"...%s..."}`, res, tc.mention)
			}
			expect(t, ts.do(t, http.MethodGet, chaosPath, nil), http.StatusOK, state)
		})
	}
}

func TestFailRate(t *testing.T) {
	const injected = `{"error":"chaos: injected failure"}`
	t.Run("1 fails every echo", func(t *testing.T) {
		ts := startServer(t, testConfig(withChaos), nil) // the real random source
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"fail_rate":1}`))
		for i := 0; i < 50; i++ {
			expect(t, ts.do(t, http.MethodPost, "/", []byte(`{"i":1}`)), http.StatusInternalServerError, injected)
		}
		expect(t, ts.do(t, http.MethodGet, healthPath, nil), http.StatusOK, `{"status":"ok","service":"echo-go"}`)
		expect(t, ts.do(t, http.MethodPost, "/", []byte(`{`)), http.StatusBadRequest, `{"error":"invalid JSON: unexpected end of JSON input"}`)
	})
	t.Run("0 fails none", func(t *testing.T) {
		ts := startServer(t, testConfig(withChaos), nil)
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"fail_rate":1}`))
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"fail_rate":0}`))
		for i := 0; i < 50; i++ {
			expect(t, ts.do(t, http.MethodPost, "/", []byte(`{"i":1}`)), http.StatusOK, `{"i":1}`)
		}
	})
	t.Run("share below the rate fails", func(t *testing.T) {
		draws := make(chan float64, 4)
		for _, d := range []float64{0, 0.499, 0.5, 0.999} {
			draws <- d
		}
		ts := startServer(t, testConfig(withChaos), func(s *server) { s.randFloat = func() float64 { return <-draws } })
		ts.do(t, http.MethodPost, chaosPath, []byte(`{"fail_rate":0.5}`))
		for _, want := range []int{500, 500, 200, 200} {
			if got := ts.do(t, http.MethodPost, "/", []byte(`1`)).status; got != want {
				t.Errorf("status %d, want %d", got, want)
			}
		}
	})
}

func TestDelayAppliesToEchoesOnly(t *testing.T) {
	slept := make(chan time.Duration, 10)
	ts := startServer(t, testConfig(withChaos, func(c *config) { c.DelayMS = 25 }), func(s *server) {
		s.sleep = func(_ context.Context, d time.Duration) error {
			slept <- d
			return nil
		}
	})
	steps := []struct {
		method, path, body string
		want               time.Duration // 0: no delay
	}{
		{http.MethodPost, "/", `{}`, 25 * time.Millisecond},
		{http.MethodGet, healthPath, "", 0},
		{http.MethodGet, chaosPath, "", 0},
		{http.MethodPost, chaosPath, `{"delay_ms":40}`, 0},
		{http.MethodPost, "/x", `[1]`, 40 * time.Millisecond},
		{http.MethodPost, "/x", `[1`, 0}, // invalid: answered at once
		{http.MethodGet, "/x", ``, 0},    // 405
		{http.MethodDelete, chaosPath, "", 0},
		{http.MethodPost, "/y", `"s"`, 25 * time.Millisecond},
		{http.MethodPost, chaosPath, `{"delay_ms":0}`, 0},
		{http.MethodPost, "/z", `null`, 0},
	}
	for _, st := range steps {
		var body []byte
		if st.method == http.MethodPost {
			body = []byte(st.body)
		}
		ts.do(t, st.method, st.path, body)
		// The handler sleeps before it answers, so any sleep is recorded by now.
		var got time.Duration
		select {
		case got = <-slept:
		default:
		}
		if got != st.want {
			t.Errorf("%s %s %s: slept %v, want %v", st.method, st.path, st.body, got, st.want)
		}
	}
}

func TestDelayIsReal(t *testing.T) {
	ts := startServer(t, testConfig(func(c *config) { c.DelayMS = 30 }), nil)
	start := time.Now()
	expect(t, ts.do(t, http.MethodPost, "/", []byte(`{}`)), http.StatusOK, `{}`)
	if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
		t.Errorf("answered after %v, want at least 30ms", elapsed)
	}
}

func TestDelayDoesNotBlockOtherRequests(t *testing.T) {
	entered := make(chan struct{}, 3)
	ts := startServer(t, testConfig(withChaos, func(c *config) { c.DelayMS = maxDelayMS }), func(s *server) {
		s.sleep = func(ctx context.Context, d time.Duration) error {
			entered <- struct{}{}
			return sleepCtx(ctx, d) // the real, 10-minute delay
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.base+"/slow", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := ts.send(req)
			results <- err
		}()
	}
	// Both echoes are inside their delay at the same time...
	recv(t, entered, "first delayed echo")
	recv(t, entered, "second delayed echo, while the first one waits")
	// ...and other requests are still answered while they wait.
	expect(t, ts.do(t, http.MethodGet, healthPath, nil), http.StatusOK, `{"status":"ok","service":"echo-go"}`)
	expect(t, ts.do(t, http.MethodGet, chaosPath, nil), http.StatusOK, `{"delay_ms":600000,"fail_rate":0,"healthy":true}`)
	// A third echo, with a short delay, completes while the first two still wait.
	expect(t, ts.do(t, http.MethodPost, chaosPath, []byte(`{"delay_ms":1}`)), http.StatusOK, `{"delay_ms":1,"fail_rate":0,"healthy":true}`)
	expect(t, ts.do(t, http.MethodPost, "/fast", []byte(`{"fast":true}`)), http.StatusOK, `{"fast":true}`)
	select {
	case err := <-results:
		t.Fatalf("a delayed echo finished early: %v", err)
	default:
	}
	// Abandoning the requests ends their delays, so the server can shut down at once.
	cancel()
	for i := 0; i < 2; i++ {
		if err := recv(t, results, "abandoned echo"); !errors.Is(err, context.Canceled) {
			t.Errorf("delayed echo: %v, want context.Canceled", err)
		}
	}
}

func TestKeepAlive(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	c := dialRaw(t, ts.addr)
	steps := []struct {
		method, raw string
		status      int
		body        string
	}{
		{http.MethodPost, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}", 200, `{"a":1}`},
		{http.MethodGet, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200, `{"status":"ok","service":"echo-go"}`},
		{http.MethodPost, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{x", 400, ""},
		{http.MethodPut, "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405, `{"error":"method not allowed"}`},
		{http.MethodPost, "POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + string(chunked([]byte(`[1,2,3]`), 3)) + "0\r\n\r\n", 200, `[1,2,3]`},
		{http.MethodPost, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ntrue", 200, `true`},
	}
	for i, st := range steps {
		res := c.roundTrip(t, st.method, st.raw)
		checkCommon(t, res, ts.name)
		if res.status != st.status || (st.body != "" && string(res.body) != st.body) {
			t.Errorf("request %d on the same connection: got %v, want %d %s", i, res, st.status, st.body)
		}
		if res.header.Get("connection") == "close" {
			t.Errorf("request %d: server closes the connection", i)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	shutdownStarted := make(chan struct{})
	ts := startServer(t, testConfig(func(c *config) { c.DelayMS = 1 }), func(s *server) {
		s.sleep = func(ctx context.Context, _ time.Duration) error {
			entered <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s.onShutdown = func() { close(shutdownStarted) }
	})

	// An idle keep-alive connection...
	idle := dialRaw(t, ts.addr)
	expect(t, idle.roundTrip(t, http.MethodGet, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), http.StatusOK, `{"status":"ok","service":"echo-go"}`)

	// ...and an echo in flight, inside its delay.
	inFlight := make(chan response, 1)
	go func() {
		res, err := ts.send(mustRequest(t, http.MethodPost, ts.base+"/slow", `{"in":"flight"}`))
		if err != nil {
			t.Errorf("in-flight echo: %v", err)
		}
		inFlight <- res
	}()
	recv(t, entered, "echo inside its delay")

	go ts.cancel() // what SIGTERM does in main
	recv(t, shutdownStarted, "shutdown start")

	// New connections are refused once shutdown has begun.
	if c, err := net.Dial("tcp", ts.addr); err == nil {
		c.Close()
		t.Error("a new connection was accepted after shutdown began")
	}
	// The idle connection is closed.
	if n, err := idle.br.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle keep-alive connection still open (read %d bytes)", n)
	}
	// run waits for the in-flight request.
	select {
	case <-ts.finished:
		t.Fatal("run returned while a request was in flight")
	default:
	}

	close(release)
	res := recv(t, inFlight, "in-flight echo response")
	checkCommon(t, res, ts.name)
	expect(t, res, http.StatusOK, `{"in":"flight"}`)
	recv(t, ts.finished, "run to return")
	if ts.runErr != nil {
		t.Errorf("run: %v", ts.runErr)
	}
}

func TestShutdownDrainIsBounded(t *testing.T) {
	entered := make(chan struct{}, 1)
	ts := startServer(t, testConfig(func(c *config) { c.DelayMS = 1 }), func(s *server) {
		s.drainTimeout = 50 * time.Millisecond
		s.sleep = func(ctx context.Context, _ time.Duration) error {
			entered <- struct{}{}
			<-ctx.Done() // never finishes on its own
			return ctx.Err()
		}
	})
	ts.runErrOK = true
	inFlight := make(chan error, 1)
	go func() {
		_, err := ts.send(mustRequest(t, http.MethodPost, ts.base+"/stuck", `{}`))
		inFlight <- err
	}()
	recv(t, entered, "echo inside its delay")
	if err := ts.stop(); !errors.Is(err, errDrainTimeout) {
		t.Errorf("run returned %v, want errDrainTimeout", err)
	}
	if err := recv(t, inFlight, "stuck request to end"); err == nil {
		t.Error("the stuck request got a response; want its connection closed")
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
