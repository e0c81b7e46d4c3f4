package rrlb.echo;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.Map;

/**
 * Settings read from the environment (see docs/echo-contract.md).
 *
 * <p>An unset or empty variable takes its default; a variable that is set to a bad value is an error,
 * which {@link Main} reports on stderr before exiting with code 2.
 *
 * @param host        the interface to bind, as given (printed verbatim in the startup line)
 * @param port        the port to bind; 0 picks an ephemeral port
 * @param serviceName the value of the {@code x-echo-service} header and of {@code service} in /health
 * @param delayMs     latency added to every echo before answering
 * @param chaos       whether the {@code /_chaos} routes exist
 */
public record Config(String host, int port, String serviceName, int delayMs, boolean chaos) {

    /** Default port of the Java echo service. */
    public static final int DEFAULT_PORT = 8083;
    /** Default bind address. */
    public static final String DEFAULT_HOST = "0.0.0.0";
    /** Default service name. */
    public static final String DEFAULT_SERVICE_NAME = "echo-java";
    /** Largest added latency, for ECHO_DELAY_MS as for the chaos {@code delay_ms}. */
    public static final int MAX_DELAY_MS = 600_000;

    /** A bad environment value; the message names the variable. */
    public static final class ConfigException extends Exception {
        private static final long serialVersionUID = 1L;

        ConfigException(String message) {
            super(message);
        }
    }

    public Config {
        if (port < 0 || port > 65_535) {
            throw new IllegalArgumentException("port out of range: " + port);
        }
        if (delayMs < 0 || delayMs > MAX_DELAY_MS) {
            throw new IllegalArgumentException("delayMs out of range: " + delayMs);
        }
    }

    /** Reads PORT, HOST, SERVICE_NAME, ECHO_DELAY_MS and ECHO_CHAOS from {@code env}. */
    public static Config fromEnv(Map<String, String> env) throws ConfigException {
        String host = value(env, "HOST");
        if (host == null) {
            host = DEFAULT_HOST;
        } else if (!host.equals(host.strip()) || host.chars().anyMatch(Character::isWhitespace)) {
            throw new ConfigException("HOST must be an IP address or host name, got \"" + host + "\"");
        } else {
            try {
                InetAddress.getByName(host);
            } catch (UnknownHostException e) {
                throw new ConfigException("HOST \"" + host + "\" does not resolve to an address");
            }
        }

        String portText = value(env, "PORT");
        int port = portText == null ? DEFAULT_PORT : parseBounded("PORT", portText, 0, 65_535);

        String name = value(env, "SERVICE_NAME");
        if (name == null) {
            name = DEFAULT_SERVICE_NAME;
        } else if (!isVisibleAscii(name)) {
            throw new ConfigException(
                    "SERVICE_NAME must be printable ASCII (it is sent as a header value), got \"" + name + "\"");
        }

        String delayText = value(env, "ECHO_DELAY_MS");
        int delayMs = delayText == null ? 0 : parseBounded("ECHO_DELAY_MS", delayText, 0, MAX_DELAY_MS);

        boolean chaos = "1".equals(env.get("ECHO_CHAOS"));
        return new Config(host, port, name, delayMs, chaos);
    }

    /** {@link #host()} (resolved now) and {@link #port()}. */
    public InetSocketAddress bindAddress() {
        return new InetSocketAddress(host, port);
    }

    private static String value(Map<String, String> env, String key) {
        String v = env.get(key);
        return v == null || v.isEmpty() ? null : v;
    }

    private static int parseBounded(String key, String text, int min, int max) throws ConfigException {
        String problem = key + " must be an integer between " + min + " and " + max + ", got \"" + text + "\"";
        if (text.length() > 10 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new ConfigException(problem);
        }
        long v = Long.parseLong(text);
        if (v < min || v > max) {
            throw new ConfigException(problem);
        }
        return (int) v;
    }

    private static boolean isVisibleAscii(String s) {
        return s.chars().allMatch(c -> c >= 0x20 && c < 0x7f) && !s.isBlank();
    }
}
