package rrlb.echo;

import java.time.Duration;

/**
 * Entry point: read the environment, bind, print the startup line, serve until SIGTERM or SIGINT.
 *
 * <p>{@code --healthcheck} instead asks a running instance for {@code /health} (see {@link HealthCheck}).
 */
public final class Main {

    /** Longest wait for in-flight requests on SIGTERM/SIGINT. */
    static final Duration DRAIN_TIMEOUT = Duration.ofSeconds(30);

    private Main() {}

    public static void main(String[] args) {
        if (args.length == 1 && "--healthcheck".equals(args[0])) {
            System.exit(HealthCheck.check(System.getenv()));
        }
        if (args.length > 0) {
            System.err.println("echo-java: no arguments expected (configure with PORT, HOST, SERVICE_NAME, "
                    + "ECHO_DELAY_MS, ECHO_CHAOS), or --healthcheck");
            System.exit(2);
        }

        Config config;
        try {
            config = Config.fromEnv(System.getenv());
        } catch (Config.ConfigException e) {
            System.err.println("echo-java: " + e.getMessage());
            System.exit(2);
            return;
        }

        EchoServer server;
        try {
            server = EchoServer.start(config);
        } catch (Exception e) {
            System.err.println(config.serviceName() + ": cannot listen on " + config.host() + ":" + config.port()
                    + ": " + e.getMessage());
            System.exit(1);
            return;
        }

        // The JVM runs shutdown hooks on SIGTERM and SIGINT but would then exit with 143/130; the hook drains
        // and halts with 0 itself. Nothing else in this program calls System.exit once the server runs.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println(config.serviceName() + ": shutting down");
            boolean drained = server.shutdown(DRAIN_TIMEOUT);
            if (!drained) {
                System.err.println(config.serviceName() + ": drain timed out after "
                        + DRAIN_TIMEOUT.toSeconds() + " s; closed remaining connections");
            }
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(0);
        }, "echo-shutdown"));

        System.out.println(config.serviceName() + " listening on " + config.host() + ":" + server.port());
        System.out.flush();
    }
}
