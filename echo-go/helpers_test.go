package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard bounds blocking network reads in tests so a broken server fails a test instead of
// hanging it. It is never used to wait for something to happen.
const guard = 30 * time.Second

// recv receives from ch, failing the test (instead of hanging it) if nothing arrives within guard.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("nothing after %v: %s", guard, what)
		panic("unreachable")
	}
}

// testConfig is the configuration tests start from: the defaults, on loopback, ephemeral port.
func testConfig(mods ...func(*config)) config {
	cfg := config{Name: defaultName, Host: "127.0.0.1", Port: 0}
	for _, m := range mods {
		m(&cfg)
	}
	return cfg
}

func withChaos(c *config) { c.Chaos = true }

// testServer is a server running its real run loop on 127.0.0.1:0.
type testServer struct {
	s      *server
	name   string
	addr   string // host:port
	base   string // http://host:port
	client *http.Client

	cancel   context.CancelFunc
	finished chan struct{} // closed when run returns
	runErr   error         // valid after finished is closed
	// runErrOK disables the cleanup check that run returned nil.
	runErrOK bool
}

// startServer starts newServer(cfg) (adjusted by tweak) on a fresh loopback listener; the test's
// cleanup shuts it down and checks that run returned nil.
func startServer(t *testing.T, cfg config, tweak func(*server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(cfg)
	s.errorLog = log.New(io.Discard, "", 0)
	if tweak != nil {
		tweak(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		s:        s,
		name:     cfg.Name,
		addr:     ln.Addr().String(),
		base:     "http://" + ln.Addr().String(),
		client:   &http.Client{Transport: &http.Transport{}, Timeout: guard},
		cancel:   cancel,
		finished: make(chan struct{}),
	}
	go func() {
		ts.runErr = s.run(ctx, ln)
		close(ts.finished)
	}()
	t.Cleanup(func() {
		ts.client.CloseIdleConnections()
		if err := ts.stop(); err != nil && !ts.runErrOK {
			t.Errorf("run returned %v, want nil", err)
		}
	})
	return ts
}

// stop asks the server to shut down and waits for run to return.
func (ts *testServer) stop() error {
	ts.cancel()
	<-ts.finished
	return ts.runErr
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// do sends method path with body (nil: no body) and checks the headers every response carries.
func (ts *testServer) do(t *testing.T, method, path string, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.send(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	checkCommon(t, res, ts.name)
	return res
}

func (ts *testServer) send(req *http.Request) (response, error) {
	resp, err := ts.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// checkCommon checks what the contract requires of every response.
func checkCommon(t *testing.T, res response, name string) {
	t.Helper()
	if got := res.header.Get("x-echo-service"); got != name {
		t.Errorf("x-echo-service = %q, want %q (response %v)", got, name, res)
	}
	if got := res.header.Get("content-type"); got != "application/json" {
		t.Errorf("content-type = %q, want application/json (response %v)", got, res)
	}
}

// expect checks status and exact body.
func expect(t *testing.T, res response, status int, body string) {
	t.Helper()
	if res.status != status || string(res.body) != body {
		t.Errorf("got %d %s, want %d %s", res.status, clip(res.body), status, clip([]byte(body)))
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q...(%d bytes)", b[:200], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// rawConn is a client connection that writes requests by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// roundTrip writes raw (a complete request, or its start) and reads one response.
func (c *rawConn) roundTrip(t *testing.T, method, raw string) response {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c.read(t, method)
}

func (c *rawConn) read(t *testing.T, method string) response {
	t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// chunked encodes b as HTTP/1.1 chunks of at most size bytes, without the terminating chunk.
func chunked(b []byte, size int) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		n := min(size, len(b))
		fmt.Fprintf(&out, "%x\r\n", n)
		out.Write(b[:n])
		out.WriteString("\r\n")
		b = b[n:]
	}
	return out.Bytes()
}

// jsonString returns a JSON string literal of exactly n bytes.
func jsonString(n int) []byte {
	return []byte(`"` + strings.Repeat("a", n-2) + `"`)
}

// countingReader is an endless body that counts how much of it was read.
type countingReader struct {
	mu sync.Mutex
	n  int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

func (r *countingReader) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
