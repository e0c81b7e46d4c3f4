package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// maxBodyBytes is the largest accepted request body (1 MiB); one byte more is a 413.
	maxBodyBytes = 1 << 20

	healthPath = "/health"
	chaosPath  = "/_chaos"

	// defaultDrainTimeout bounds the graceful shutdown.
	defaultDrainTimeout = 30 * time.Second
)

// chaosSettings is the run-time behaviour shown and changed by the chaos routes.
// Field order is the JSON order of GET /_chaos.
type chaosSettings struct {
	DelayMS  int64   `json:"delay_ms"`
	FailRate float64 `json:"fail_rate"`
	Healthy  bool    `json:"healthy"`
}

type healthBody struct {
	Status  string `json:"status"`
	Service string `json:"service"`
}

// server is the echo service: an http.Handler plus run, which serves it on a listener.
type server struct {
	cfg     config
	initial chaosSettings

	mu       sync.Mutex
	settings chaosSettings

	healthOK   []byte
	healthDown []byte

	// The fields below are set by newServer; tests replace them before run.

	// sleep waits d unless ctx ends first (the added latency of an echo).
	sleep func(ctx context.Context, d time.Duration) error
	// randFloat returns a number in [0, 1) for the fail_rate draw.
	randFloat func() float64
	// onShutdown, when set, runs once graceful shutdown has begun (the listener is already closed).
	onShutdown func()
	// drainTimeout bounds the graceful shutdown in run.
	drainTimeout time.Duration
	// errorLog receives net/http's own error messages.
	errorLog *log.Logger
}

func newServer(cfg config) *server {
	initial := chaosSettings{DelayMS: cfg.DelayMS, FailRate: 0, Healthy: true}
	return &server{
		cfg:          cfg,
		initial:      initial,
		settings:     initial,
		healthOK:     mustJSON(healthBody{"ok", cfg.Name}),
		healthDown:   mustJSON(healthBody{"unhealthy", cfg.Name}),
		sleep:        sleepCtx,
		randFloat:    rand.Float64,
		drainTimeout: defaultDrainTimeout,
		errorLog:     log.Default(),
	}
}

// errDrainTimeout is returned (wrapped) by run when in-flight requests outlived the drain bound.
var errDrainTimeout = errors.New("drain timeout exceeded")

// run serves HTTP on ln until ctx is done, then shuts down gracefully: the listener is closed,
// idle keep-alive connections are closed and in-flight requests may finish within s.drainTimeout;
// connections still busy after that are closed. It returns nil after a complete drain.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          s.errorLog,
	}
	if s.onShutdown != nil {
		srv.RegisterOnShutdown(s.onShutdown)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	drainCtx, cancel := context.WithTimeout(context.Background(), s.drainTimeout)
	defer cancel()
	var err error
	if shutdownErr := srv.Shutdown(drainCtx); shutdownErr != nil {
		_ = srv.Close()
		err = fmt.Errorf("%w (%s); closed the remaining connections", errDrainTimeout, s.drainTimeout)
	}
	if e := <-serveErr; err == nil && !errors.Is(e, http.ErrServerClosed) {
		err = fmt.Errorf("serve: %w", e)
	}
	return err
}

// ServeHTTP routes every request: /health, /_chaos (only with chaos enabled), else the echo.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("x-echo-service", s.cfg.Name)
	h.Set("content-type", "application/json")

	switch {
	case r.URL.Path == healthPath:
		s.serveHealth(w, r)
	case s.cfg.Chaos && r.URL.Path == chaosPath:
		s.serveChaos(w, r)
	default:
		s.serveEcho(w, r)
	}
}

func (s *server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	if s.current().Healthy {
		writeRaw(w, http.StatusOK, s.healthOK)
	} else {
		writeRaw(w, http.StatusServiceUnavailable, s.healthDown)
	}
}

func (s *server) serveEcho(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if err := validateJSON(body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}

	cur := s.current()
	if cur.DelayMS > 0 {
		if err := s.sleep(r.Context(), time.Duration(cur.DelayMS)*time.Millisecond); err != nil {
			return // the client went away (or the drain bound closed the connection)
		}
	}
	if cur.FailRate > 0 && s.randFloat() < cur.FailRate {
		writeError(w, http.StatusInternalServerError, "chaos: injected failure")
		return
	}
	writeRaw(w, http.StatusOK, body)
}

func (s *server) serveChaos(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.current())
	case http.MethodDelete:
		s.mu.Lock()
		s.settings = s.initial
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, s.initial)
	case http.MethodPost:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		// Validate the whole body before touching the settings: a bad request changes nothing.
		patch, err := parseChaosPatch(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		patch.apply(&s.settings)
		next := s.settings
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, next)
	default:
		methodNotAllowed(w, "GET, POST, DELETE")
	}
}

func (s *server) current() chaosSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// chaosPatch holds the fields given to POST /_chaos.
type chaosPatch struct {
	delayMS  *int64
	failRate *float64
	healthy  *bool
}

func (p chaosPatch) apply(c *chaosSettings) {
	if p.delayMS != nil {
		c.DelayMS = *p.delayMS
	}
	if p.failRate != nil {
		c.FailRate = *p.failRate
	}
	if p.healthy != nil {
		c.Healthy = *p.healthy
	}
}

// parseChaosPatch validates a POST /_chaos body: a JSON object with only the optional fields
// delay_ms (integer 0..=600000), fail_rate (number 0..=1) and healthy (bool).
// The first problem (fields in name order) is returned, naming the field.
func parseChaosPatch(body []byte) (chaosPatch, error) {
	var p chaosPatch
	if err := validateJSON(body); err != nil {
		return p, fmt.Errorf("invalid JSON: %w", err)
	}
	if trimJSONSpace(body)[0] != '{' {
		return p, errors.New("body must be a JSON object with optional fields delay_ms, fail_rate, healthy")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return p, fmt.Errorf("invalid JSON: %w", err)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)

	const (
		delayErr = "delay_ms must be an integer between 0 and 600000"
		rateErr  = "fail_rate must be a number between 0.0 and 1.0"
		boolErr  = "healthy must be a boolean"
	)
	for _, name := range names {
		raw := trimJSONSpace(fields[name])
		switch name {
		case "delay_ms":
			// An integer in the JSON Schema sense: a number with no fractional part (500, 500.0, 5e2).
			f, ok := jsonNumber(raw)
			if !ok || f != math.Trunc(f) || f < 0 || f > maxDelayMS {
				return p, errors.New(delayErr)
			}
			v := int64(f)
			p.delayMS = &v
		case "fail_rate":
			f, ok := jsonNumber(raw)
			if !ok || f < 0 || f > 1 {
				return p, errors.New(rateErr)
			}
			p.failRate = &f
		case "healthy":
			var b bool
			if bytes.Equal(raw, []byte("null")) || json.Unmarshal(raw, &b) != nil {
				return p, errors.New(boolErr)
			}
			p.healthy = &b
		default:
			return p, fmt.Errorf("unknown field %q (allowed: delay_ms, fail_rate, healthy)", name)
		}
	}
	return p, nil
}

// jsonNumber decodes raw when it is a JSON number that fits a float64.
func jsonNumber(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false // null, string, bool, object, array
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false // e.g. 1e400
	}
	return f, true
}

// validateJSON reports why body is not exactly one JSON value (surrounding whitespace allowed).
func validateJSON(body []byte) error {
	if len(trimJSONSpace(body)) == 0 {
		return errors.New("empty body")
	}
	if !json.Valid(body) {
		// Unmarshal runs the same syntax check first and reports its position-specific error.
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return errors.New("syntax error")
	}
	// encoding/json does not check that strings are UTF-8; RFC 8259 section 8.1 requires it.
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8")
	}
	return nil
}

// trimJSONSpace removes the whitespace JSON allows around a value.
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// readBody reads the whole request body, refusing more than maxBodyBytes: a declared
// Content-Length is checked up front, and a body of unknown length (chunked) is counted while
// reading. At most maxBodyBytes+1 bytes are ever buffered. On failure it has already answered.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > maxBodyBytes {
		bodyTooLarge(w)
		return nil, false
	}
	// MaxBytesReader never reads past the limit + 1 byte and, on overflow, tells the server
	// to close the connection rather than drain the rest of the body.
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	size := 512
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // room to see EOF without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), maxBodyBytes+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				bodyTooLarge(w)
			} else {
				writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
			}
			return nil, false
		}
	}
}

func bodyTooLarge(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", maxBodyBytes))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, mustJSON(v))
}

// writeRaw answers status with body (content-type and x-echo-service are already set).
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("content-length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mustJSON encodes v compactly, without HTML escaping and without a trailing newline.
// The server only encodes its own plain structs, which cannot fail.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// sleepCtx waits d, or returns ctx's error if ctx ends first. It blocks only its own goroutine.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
