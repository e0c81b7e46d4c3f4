// Command echo-go is the Go echo service of the rrlb fleet: POST any JSON value to any path and
// get it back unchanged. See README.md and ../docs/echo-contract.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainWith(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

// mainWith is main with its inputs and outputs passed in; tweak (tests only) adjusts the server
// before it starts. It returns the process exit code: 0 after a signal-initiated shutdown,
// 2 for bad flags or environment values, 1 for other failures (e.g. the port is taken).
func mainWith(args []string, getenv func(string) string, stdout, stderr io.Writer, tweak func(*server)) int {
	fs := flag.NewFlagSet("echo-go", flag.ContinueOnError)
	fs.SetOutput(stderr)
	healthcheck := fs.Bool("healthcheck", false,
		"GET /health of the server configured by the environment (HOST, PORT); exit 0 if it answers 200, else 1")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "echo-go: unexpected argument %q (configuration comes from the environment)\n", fs.Arg(0))
		return 2
	}

	cfg, err := loadConfig(getenv)
	if *healthcheck {
		// Docker reserves exit code 2 for health checks: any failure here is 1.
		if err != nil {
			fmt.Fprintf(stderr, "echo-go: %v\n", err)
			return 1
		}
		return runHealthcheck(cfg, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "echo-go: %v\n", err)
		return 2
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cfg.Name, err)
		return 1
	}
	s := newServer(cfg)
	s.errorLog = log.New(stderr, cfg.Name+": ", 0)
	if tweak != nil {
		tweak(s)
	}

	// Signals are caught before the startup line is printed, so a supervisor may signal as soon
	// as it has read it. After the first signal the default action returns: a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop)

	port := ln.Addr().(*net.TCPAddr).Port
	// Exactly one line on stdout, written unbuffered, once the socket accepts connections.
	fmt.Fprintf(stdout, "%s listening on %s\n", cfg.Name, net.JoinHostPort(cfg.Host, strconv.Itoa(port)))

	err = s.run(ctx, ln)
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "%s: stopped\n", cfg.Name)
		return 0
	case errors.Is(err, errDrainTimeout):
		// Still the requested stop: report it, but exit 0 as SIGTERM promises.
		fmt.Fprintf(stderr, "%s: stopped: %v\n", cfg.Name, err)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: %v\n", cfg.Name, err)
		return 1
	}
}

// runHealthcheck is the -healthcheck mode for images without curl: GET /health on the
// local server and return 0 when it answers 200, else 1.
func runHealthcheck(cfg config, stderr io.Writer) int {
	if cfg.Port == 0 {
		fmt.Fprintln(stderr, "echo-go: -healthcheck needs the server's PORT (PORT=0 is ephemeral)")
		return 1
	}
	url := "http://" + net.JoinHostPort(healthcheckHost(cfg.Host), strconv.Itoa(cfg.Port)) + healthPath
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "echo-go: healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "echo-go: healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// healthcheckHost is the address to reach a server bound to host from the same machine:
// loopback for the wildcard addresses, else host itself.
func healthcheckHost(host string) string {
	switch host {
	case "0.0.0.0", "":
		return "127.0.0.1"
	case "::", "[::]":
		return "::1"
	}
	return host
}
