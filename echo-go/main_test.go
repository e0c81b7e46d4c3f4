package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary act as the echo-go program (see TestMain), so tests can
// signal a real process.
const childEnv = "ECHO_GO_TEST_CHILD"

// delayMarker is what the child writes to stderr when an echo enters its delay.
const delayMarker = "test-hook: echo delay started"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(mainWith(nil, os.Getenv, os.Stdout, os.Stderr, childHooks))
	}
	os.Exit(m.Run())
}

// childHooks makes every delayed echo in the child announce itself on stderr and then wait until
// graceful shutdown has begun, so the parent can signal while the echo is certainly in flight.
func childHooks(s *server) {
	shutdown := make(chan struct{})
	var once sync.Once
	s.onShutdown = func() { once.Do(func() { close(shutdown) }) }
	s.sleep = func(ctx context.Context, d time.Duration) error {
		fmt.Fprintln(os.Stderr, delayMarker)
		select {
		case <-shutdown:
		case <-ctx.Done():
			return ctx.Err()
		}
		return sleepCtx(ctx, d)
	}
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string // substring of the error; "" = no error
	}{
		{"defaults", nil, config{Name: "echo-go", Host: "0.0.0.0", Port: 8081}, ""},
		{"empty values are defaults", map[string]string{"PORT": "", "HOST": "", "SERVICE_NAME": "", "ECHO_DELAY_MS": ""},
			config{Name: "echo-go", Host: "0.0.0.0", Port: 8081}, ""},
		{"all set", map[string]string{"PORT": "9000", "HOST": "127.0.0.1", "SERVICE_NAME": "blue", "ECHO_DELAY_MS": "15", "ECHO_CHAOS": "1"},
			config{Name: "blue", Host: "127.0.0.1", Port: 9000, DelayMS: 15, Chaos: true}, ""},
		{"PORT=0 is ephemeral", map[string]string{"PORT": "0"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 0}, ""},
		{"PORT max", map[string]string{"PORT": "65535"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 65535}, ""},
		{"ECHO_DELAY_MS max", map[string]string{"ECHO_DELAY_MS": "600000"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 8081, DelayMS: 600000}, ""},
		{"ECHO_CHAOS=true is off", map[string]string{"ECHO_CHAOS": "true"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 8081}, ""},
		{"ECHO_CHAOS=0 is off", map[string]string{"ECHO_CHAOS": "0"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 8081}, ""},
		{"ECHO_CHAOS=yes is off", map[string]string{"ECHO_CHAOS": "yes"}, config{Name: "echo-go", Host: "0.0.0.0", Port: 8081}, ""},
		{"PORT=abc", map[string]string{"PORT": "abc"}, config{}, "PORT"},
		{"PORT=-1", map[string]string{"PORT": "-1"}, config{}, "PORT"},
		{"PORT=65536", map[string]string{"PORT": "65536"}, config{}, "PORT"},
		{"PORT=+80", map[string]string{"PORT": "+80"}, config{}, "PORT"},
		{"PORT with space", map[string]string{"PORT": " 80"}, config{}, "PORT"},
		{"PORT=8.5", map[string]string{"PORT": "8.5"}, config{}, "PORT"},
		{"ECHO_DELAY_MS=-1", map[string]string{"ECHO_DELAY_MS": "-1"}, config{}, "ECHO_DELAY_MS"},
		{"ECHO_DELAY_MS=abc", map[string]string{"ECHO_DELAY_MS": "abc"}, config{}, "ECHO_DELAY_MS"},
		{"ECHO_DELAY_MS=1.5", map[string]string{"ECHO_DELAY_MS": "1.5"}, config{}, "ECHO_DELAY_MS"},
		{"ECHO_DELAY_MS over max", map[string]string{"ECHO_DELAY_MS": "600001"}, config{}, "ECHO_DELAY_MS"},
		{"ECHO_DELAY_MS huge", map[string]string{"ECHO_DELAY_MS": "99999999999999999999999"}, config{}, "ECHO_DELAY_MS"},
		{"SERVICE_NAME with newline", map[string]string{"SERVICE_NAME": "a\nb"}, config{}, "SERVICE_NAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMainRejectsBadInput(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		mention string
	}{
		{"bad PORT", nil, map[string]string{"PORT": "abc"}, "PORT"},
		{"negative ECHO_DELAY_MS", nil, map[string]string{"ECHO_DELAY_MS": "-1"}, "ECHO_DELAY_MS"},
		{"unknown flag", []string{"-nope"}, nil, "nope"},
		{"stray argument", []string{"serve"}, nil, "serve"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := mainWith(tc.args, env(tc.env), &stdout, &stderr, nil); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.mention) {
				t.Errorf("stderr %q does not mention %s", stderr.String(), tc.mention)
			}
		})
	}
}

func TestMainPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var stdout, stderr bytes.Buffer
	if code := mainWith(nil, env(map[string]string{"HOST": "127.0.0.1", "PORT": port}), &stdout, &stderr, nil); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stdout.Len() != 0 || stderr.Len() == 0 {
		t.Errorf("stdout %q, stderr %q: want only an error on stderr", stdout.String(), stderr.String())
	}
}

func TestHealthcheckFlag(t *testing.T) {
	ts := startServer(t, testConfig(withChaos), nil)
	_, port, _ := net.SplitHostPort(ts.addr)
	check := func(host, port string) int {
		var stdout, stderr bytes.Buffer
		return mainWith([]string{"-healthcheck"}, env(map[string]string{"HOST": host, "PORT": port}), &stdout, &stderr, nil)
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()

	cases := []struct {
		name       string
		host, port string
		unhealthy  bool
		want       int
	}{
		{"healthy", "127.0.0.1", port, false, 0},
		{"wildcard HOST checks loopback", "", port, false, 0},
		{"wildcard HOST 0.0.0.0", "0.0.0.0", port, false, 0},
		{"unhealthy", "127.0.0.1", port, true, 1},
		{"nothing listening", "127.0.0.1", closedPort, false, 1},
		{"ephemeral PORT", "127.0.0.1", "0", false, 1},
		{"bad PORT is 1, not 2", "127.0.0.1", "abc", false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts.do(t, http.MethodPost, chaosPath, []byte(fmt.Sprintf(`{"healthy":%t}`, !tc.unhealthy)))
			if got := check(tc.host, tc.port); got != tc.want {
				t.Errorf("exit code %d, want %d", got, tc.want)
			}
		})
	}
}

// child is the test binary re-run as the echo-go program.
type child struct {
	cmd     *exec.Cmd
	stdout  *bufio.Reader
	stderr  chan string // lines, closed at EOF
	addr    string      // from the startup line
	errText strings.Builder
}

// startChild runs the program with the given environment (on top of a clean one) and reads its
// startup line. The child is killed at cleanup if still running.
func startChild(t *testing.T, extra map[string]string) *child {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	cmd := exec.Command(os.Args[0])
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "PORT", "HOST", "SERVICE_NAME", "ECHO_DELAY_MS", "ECHO_CHAOS", childEnv:
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, childEnv+"=1")
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdout: bufio.NewReader(stdout), stderr: make(chan string, 100)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.stderr <- sc.Text()
		}
		close(c.stderr)
	}()
	return c
}

var startupLine = regexp.MustCompile(`^(\S+) listening on (127\.0\.0\.1:([0-9]+))\n$`)

// readStartup reads the startup line and checks its format.
func (c *child) readStartup(t *testing.T, name string) {
	t.Helper()
	line, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line (read %q): %v", line, err)
	}
	m := startupLine.FindStringSubmatch(line)
	if m == nil || m[1] != name || m[3] == "0" {
		t.Fatalf("startup line %q, want %q listening on 127.0.0.1:<actual port>", line, name)
	}
	c.addr = m[2]
}

// wait waits for the child to exit after its output ends and returns its exit code and the rest
// of its stdout.
func (c *child) wait(t *testing.T) (int, string) {
	t.Helper()
	rest, err := io.ReadAll(c.stdout)
	if err != nil {
		t.Fatal(err)
	}
	for line := range c.stderr {
		c.errText.WriteString(line + "\n")
	}
	if err := c.cmd.Wait(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return c.cmd.ProcessState.ExitCode(), string(rest)
}

func TestProcessStopsOnSignal(t *testing.T) {
	cases := []struct {
		name     string
		sig      os.Signal
		inFlight bool
	}{
		{"SIGTERM idle", syscall.SIGTERM, false},
		{"SIGINT idle", os.Interrupt, false},
		{"SIGTERM finishes an in-flight delayed echo", syscall.SIGTERM, true},
		{"SIGINT finishes an in-flight delayed echo", os.Interrupt, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startChild(t, map[string]string{"PORT": "0", "HOST": "127.0.0.1", "SERVICE_NAME": "child-echo", "ECHO_DELAY_MS": "1"})
			c.readStartup(t, "child-echo")

			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			res, err := client.Get("http://" + c.addr + healthPath)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK || res.Header.Get("x-echo-service") != "child-echo" {
				t.Fatalf("health: %d %v", res.StatusCode, res.Header)
			}

			echoed := make(chan string, 1)
			if tc.inFlight {
				go func() {
					res, err := client.Post("http://"+c.addr+"/slow", "application/json", strings.NewReader(`{"drain":true}`))
					if err != nil {
						echoed <- "error: " + err.Error()
						return
					}
					defer res.Body.Close()
					b, _ := io.ReadAll(res.Body)
					echoed <- fmt.Sprintf("%d %s", res.StatusCode, b)
				}()
				// Wait until the child reports the echo inside its delay.
				for line := ""; line != delayMarker; {
					var ok bool
					select {
					case line, ok = <-c.stderr:
						if !ok {
							t.Fatalf("child ended before the echo was in flight; stderr:\n%s", c.errText.String())
						}
						c.errText.WriteString(line + "\n")
					case <-time.After(guard):
						t.Fatal("the delayed echo never reached the child")
					}
				}
			}

			if err := c.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if tc.inFlight {
				if got := recv(t, echoed, "in-flight echo response"); got != `200 {"drain":true}` {
					t.Errorf("in-flight echo: %s, want 200 with the body", got)
				}
			}
			code, rest := c.wait(t)
			if code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, c.errText.String())
			}
			if rest != "" {
				t.Errorf("more than one line on stdout: %q", rest)
			}
		})
	}
}

func TestProcessBadEnvironment(t *testing.T) {
	c := startChild(t, map[string]string{"PORT": "abc"})
	code, out := c.wait(t)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	if !strings.Contains(c.errText.String(), "PORT") {
		t.Errorf("stderr %q does not name PORT", c.errText.String())
	}
}
