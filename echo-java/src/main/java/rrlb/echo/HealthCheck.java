package rrlb.echo;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.util.Map;

/**
 * Container health probe: {@code GET /health} on the local instance, exit 0 on 200 and 1 otherwise.
 *
 * <p>Run as {@code java -cp echo-java.jar rrlb.echo.HealthCheck} (or {@code java -jar echo-java.jar
 * --healthcheck}); reads PORT and HOST like the server, connecting to loopback when HOST is a wildcard.
 */
public final class HealthCheck {

    private static final int TIMEOUT_MS = 3_000;

    private HealthCheck() {}

    public static void main(String[] args) {
        System.exit(check(System.getenv()));
    }

    static int check(Map<String, String> env) {
        Config config;
        try {
            config = Config.fromEnv(env);
        } catch (Config.ConfigException e) {
            System.err.println("healthcheck: " + e.getMessage());
            return 1;
        }
        if (config.port() == 0) {
            System.err.println("healthcheck: PORT=0 gives no port to probe");
            return 1;
        }
        String host = config.host();
        if (host.equals("0.0.0.0") || host.equals("::") || host.equals("[::]")) {
            host = "127.0.0.1";
        } else if (host.indexOf(':') >= 0 && !host.startsWith("[")) {
            host = "[" + host + "]";
        }
        try {
            URL url = new URL("http", host, config.port(), "/health");
            HttpURLConnection conn = (HttpURLConnection) url.openConnection();
            conn.setConnectTimeout(TIMEOUT_MS);
            conn.setReadTimeout(TIMEOUT_MS);
            conn.setRequestMethod("GET");
            int status = conn.getResponseCode();
            InputStream body = status < 400 ? conn.getInputStream() : conn.getErrorStream();
            if (body != null) {
                body.close();
            }
            conn.disconnect();
            if (status != 200) {
                System.err.println("healthcheck: " + url + " answered " + status);
                return 1;
            }
            return 0;
        } catch (IOException e) {
            System.err.println("healthcheck: " + e);
            return 1;
        }
    }
}
