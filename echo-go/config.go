package main

import (
	"fmt"
	"strconv"
)

const (
	defaultName = "echo-go"
	defaultHost = "0.0.0.0"
	defaultPort = 8081

	// maxDelayMS bounds ECHO_DELAY_MS and the chaos delay_ms field (10 minutes).
	maxDelayMS = 600000
)

// config is the service configuration read from the environment.
type config struct {
	Name    string // SERVICE_NAME
	Host    string // HOST
	Port    int    // PORT; 0 binds an ephemeral port
	DelayMS int64  // ECHO_DELAY_MS
	Chaos   bool   // ECHO_CHAOS=1
}

// loadConfig reads the configuration through getenv (os.Getenv in main).
// An empty variable counts as unset. A malformed value is an error naming the variable.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{Name: defaultName, Host: defaultHost, Port: defaultPort}

	if v := getenv("SERVICE_NAME"); v != "" {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c == 0x7f {
				return config{}, fmt.Errorf("invalid SERVICE_NAME %q: control characters are not allowed in a header value", v)
			}
		}
		cfg.Name = v
	}
	if v := getenv("HOST"); v != "" {
		cfg.Host = v
	}
	if v := getenv("PORT"); v != "" {
		n, ok := parseUint(v, 65535)
		if !ok {
			return config{}, fmt.Errorf("invalid PORT %q: want an integer 0..65535", v)
		}
		cfg.Port = int(n)
	}
	if v := getenv("ECHO_DELAY_MS"); v != "" {
		n, ok := parseUint(v, maxDelayMS)
		if !ok {
			return config{}, fmt.Errorf("invalid ECHO_DELAY_MS %q: want an integer 0..%d (milliseconds)", v, maxDelayMS)
		}
		cfg.DelayMS = n
	}
	cfg.Chaos = getenv("ECHO_CHAOS") == "1"
	return cfg, nil
}

// parseUint accepts only ASCII decimal digits (no sign, no spaces) with a value <= max.
func parseUint(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}
