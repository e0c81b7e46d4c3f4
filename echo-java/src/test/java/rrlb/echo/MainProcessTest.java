package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse.BodyHandlers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The real entry point in a child JVM: startup line, exit codes, signals, health probe. */
class MainProcessTest {

    private static final Pattern STARTUP = Pattern.compile("(\\S+) listening on (\\S+):(\\d+)");

    @TempDir
    Path tmp;

    private final List<Process> started = new ArrayList<>();

    @AfterEach
    void killLeftovers() throws InterruptedException {
        for (Process p : started) {
            if (p.isAlive()) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    private Process spawn(Map<String, String> env, String... args) throws IOException {
        return spawnClass(Main.class.getName(), env, args);
    }

    private Process spawnClass(String mainClass, Map<String, String> env, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-cp", System.getProperty("java.class.path"), mainClass));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command)
                .redirectError(tmp.resolve("stderr-" + started.size()).toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().keySet().removeIf(k -> k.equals("PORT") || k.equals("HOST") || k.equals("SERVICE_NAME")
                || k.startsWith("ECHO_"));
        pb.environment().putAll(env);
        Process p = pb.start();
        started.add(p);
        return p;
    }

    private String stderrOf(int index) throws IOException {
        return Files.readString(tmp.resolve("stderr-" + index));
    }

    /** Reads the startup line (bounded) and returns the port it names. */
    private static int awaitStartup(Process p, String name, String host) throws Exception {
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                return null;
            }
        }).get(60, TimeUnit.SECONDS);
        assertNotNull(line, "no startup line");
        Matcher m = STARTUP.matcher(line);
        assertTrue(m.matches(), "startup line: " + line);
        assertEquals(name, m.group(1));
        assertEquals(host, m.group(2));
        int port = Integer.parseInt(m.group(3));
        assertTrue(port > 0, line);
        return port;
    }

    private static int getStatus(int port, String path) throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                BodyHandlers.discarding()).statusCode();
    }

    @Test
    void printsTheBoundPortAndExitsZeroOnSigterm() throws Exception {
        Process p = spawn(Map.of("PORT", "0", "HOST", "127.0.0.1", "SERVICE_NAME", "echo-proc", "ECHO_CHAOS", "1"));
        int port = awaitStartup(p, "echo-proc", "127.0.0.1");
        assertEquals(200, getStatus(port, "/health"));
        assertEquals(200, getStatus(port, "/_chaos"));

        p.destroy(); // SIGTERM
        assertTrue(p.waitFor(20, TimeUnit.SECONDS), "still running after SIGTERM");
        assertEquals(0, p.exitValue(), () -> "stderr: " + stderrOfQuietly(0));
    }

    @Test
    void exitsZeroOnSigint() throws Exception {
        Assumptions.assumeTrue(new File("/bin/kill").canExecute() || new File("/usr/bin/kill").canExecute(),
                "needs a kill command");
        // Started under nohup, a JVM leaves SIGINT ignored (it installs no handler for it), and so would the
        // service this test starts the same way: it then rightly outlives SIGINT, and there is nothing to check.
        // This JVM's own disposition says which case this is.
        Assumptions.assumeFalse(sigintIgnored(), "SIGINT is ignored by this JVM, and would be by the service");
        Process p = spawn(Map.of("PORT", "0", "HOST", "127.0.0.1"));
        int port = awaitStartup(p, "echo-java", "127.0.0.1");
        assertEquals(200, getStatus(port, "/health"));
        assertEquals(405, getStatus(port, "/_chaos"), "chaos routes are off unless ECHO_CHAOS=1");

        Process kill = new ProcessBuilder("kill", "-INT", Long.toString(p.pid())).inheritIO().start();
        assertEquals(0, kill.waitFor());
        assertTrue(p.waitFor(20, TimeUnit.SECONDS), "still running after SIGINT");
        assertEquals(0, p.exitValue());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "PORT|abc", "PORT|70000", "ECHO_DELAY_MS|-1", "ECHO_DELAY_MS|x", "HOST|bad host",
    })
    void badEnvironmentExitsTwo(String key, String value) throws Exception {
        Process p = spawn(Map.of(key, value));
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue());
        assertEquals("", new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        assertTrue(stderrOf(0).contains(key), stderrOf(0));
    }

    @Test
    void portInUseExitsNonZero() throws Exception {
        try (TestServer other = TestServer.start(TestServer.config(false, 0))) {
            Process p = spawn(Map.of("PORT", Integer.toString(other.port), "HOST", "127.0.0.1"));
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertEquals(1, p.exitValue());
            assertTrue(stderrOf(0).contains("cannot listen"), stderrOf(0));
        }
    }

    @Test
    void healthCheckFollowsHealth() throws Exception {
        try (TestServer srv = TestServer.start(TestServer.config(true, 0))) {
            Map<String, String> env = Map.of("PORT", Integer.toString(srv.port), "HOST", "0.0.0.0");
            assertEquals(0, HealthCheck.check(env));
            srv.post("/_chaos", "{\"healthy\":false}");
            assertEquals(1, HealthCheck.check(env));

            // The same through the jar's entry point, as the container's HEALTHCHECK runs it.
            srv.send("DELETE", "/_chaos", HttpRequest.BodyPublishers.noBody());
            Process p = spawn(env, "--healthcheck");
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue(), () -> stderrOfQuietly(0));
            // The short class name compose.yaml runs, and the packaged one.
            Process shortName = spawnClass("HealthCheck", env);
            assertTrue(shortName.waitFor(60, TimeUnit.SECONDS));
            assertEquals(0, shortName.exitValue(), () -> stderrOfQuietly(1));

            srv.post("/_chaos", "{\"healthy\":false}");
            Process unhealthy = spawnClass(rrlb.echo.HealthCheck.class.getName(), env);
            assertTrue(unhealthy.waitFor(60, TimeUnit.SECONDS));
            assertEquals(1, unhealthy.exitValue());
        }
        assertEquals(1, HealthCheck.check(Map.of("PORT", "0")));
    }

    private String stderrOfQuietly(int index) {
        try {
            return stderrOf(index);
        } catch (IOException e) {
            return e.toString();
        }
    }

    /** Whether this process ignores SIGINT (Linux: bit 1 of {@code SigIgn} in /proc/self/status). */
    private static boolean sigintIgnored() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.US_ASCII)) {
                if (line.startsWith("SigIgn:")) {
                    long mask = Long.parseUnsignedLong(line.substring("SigIgn:".length()).trim(), 16);
                    return (mask & (1L << 1)) != 0;
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or no /proc: the default disposition.
        }
        return false;
    }
}
