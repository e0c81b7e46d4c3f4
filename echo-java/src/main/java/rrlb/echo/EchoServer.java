package rrlb.echo;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.CharBuffer;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The echo service on the JDK's {@code com.sun.net.httpserver.HttpServer} (see docs/echo-contract.md).
 *
 * <p><b>Threads.</b> The JDK's dispatcher thread accepts connections and hands each request to a worker from a
 * cached pool; a worker reads the body, validates it and answers. A delayed echo does not keep its worker: the
 * exchange is left open, a {@link DelayScheduler} fires after the delay and a worker then writes the answer, so
 * delays never hold or starve threads.
 *
 * <p><b>Shutdown.</b> {@code HttpServer.stop(delay)} closes the listener at once and then waits until either the
 * JDK's own exchange count drops to zero or {@code delay} seconds pass, but on JDK 17 it only notices "zero"
 * when an exchange finishes, so an idle server always waits the full delay. {@link #shutdown} therefore closes the
 * listener through {@code stop(n)} on a helper thread, waits on its own count of open exchanges (answers sent
 * meanwhile carry {@code Connection: close}), and then calls {@code stop(0)}, which closes the idle keep-alive
 * connections and ends the dispatcher.
 */
public final class EchoServer {

    /** Largest accepted request body; one byte more is a 413. */
    public static final int MAX_BODY_BYTES = 1_048_576;

    /**
     * After a 413, read and drop up to this much of the rest of the body so the connection can be reused and the
     * client is not reset while it is still sending; a longer body makes the server close the connection.
     */
    static final int MAX_DISCARD_BYTES = 4 * MAX_BODY_BYTES;

    private static final int MAX_WORKERS = 512;
    private static final int BACKLOG = 1024;

    static {
        // The JDK server writes the head and the body of a response separately; with Nagle's algorithm on,
        // the body waits for the client's delayed ACK (~40 ms) on every keep-alive request.
        if (System.getProperty("sun.net.httpserver.nodelay") == null) {
            System.setProperty("sun.net.httpserver.nodelay", "true");
        }
    }

    private final Config config;
    private final HttpServer http;
    private final int port;
    private final ExecutorService workers;
    private final DelayScheduler scheduler;
    private final ScheduledThreadPoolExecutor ownScheduler;
    private final ChaosSettings initialChaos;
    private final AtomicReference<ChaosSettings> chaos;
    private final InFlight inFlight = new InFlight();
    private volatile boolean draining;
    private boolean stopped;
    private boolean drainedCleanly;

    private final byte[] methodNotAllowed = Json.error("method not allowed");
    private final byte[] bodyTooLarge = Json.error("body exceeds " + MAX_BODY_BYTES + " bytes");
    private final byte[] injectedFailure = Json.error("chaos: injected failure");
    private final byte[] internalError = Json.error("internal error");
    private final byte[] healthOk;
    private final byte[] healthDown;

    private EchoServer(Config config, HttpServer http, ExecutorService workers, DelayScheduler scheduler,
                       ScheduledThreadPoolExecutor ownScheduler) {
        this.config = config;
        this.http = http;
        this.port = http.getAddress().getPort();
        this.workers = workers;
        this.scheduler = scheduler;
        this.ownScheduler = ownScheduler;
        this.initialChaos = ChaosSettings.initial(config);
        this.chaos = new AtomicReference<>(initialChaos);
        this.healthOk = Json.bytes(Json.object().put("status", "ok").put("service", config.serviceName()));
        this.healthDown = Json.bytes(Json.object().put("status", "unhealthy").put("service", config.serviceName()));
    }

    /** Binds {@code config.host():config.port()} and starts serving; the socket accepts when this returns. */
    public static EchoServer start(Config config) throws IOException {
        return start(config, null, null);
    }

    /**
     * As {@link #start(Config)}, with the delay scheduler and the worker pool replaceable (tests).
     *
     * @param scheduler null for a scheduler thread owned by the server
     * @param workers   null for the default cached pool; the server shuts the pool down when it stops
     */
    static EchoServer start(Config config, DelayScheduler scheduler, ExecutorService workers) throws IOException {
        ScheduledThreadPoolExecutor ownScheduler = null;
        if (scheduler == null) {
            ownScheduler = new ScheduledThreadPoolExecutor(1, daemonThreads("echo-delay"));
            ownScheduler.setRemoveOnCancelPolicy(true);
            ScheduledThreadPoolExecutor ses = ownScheduler;
            scheduler = (task, delayMs) -> ses.schedule(task, delayMs, TimeUnit.MILLISECONDS);
        }
        if (workers == null) {
            workers = new ThreadPoolExecutor(0, MAX_WORKERS, 60, TimeUnit.SECONDS, new SynchronousQueue<>(),
                    daemonThreads("echo-worker"));
        }
        HttpServer http;
        try {
            http = HttpServer.create(config.bindAddress(), BACKLOG);
        } catch (IOException | RuntimeException e) {
            workers.shutdownNow();
            if (ownScheduler != null) {
                ownScheduler.shutdownNow();
            }
            throw e;
        }
        EchoServer server = new EchoServer(config, http, workers, scheduler, ownScheduler);
        http.createContext("/", server::handle);
        http.setExecutor(workers);
        http.start();
        return server;
    }

    /** The bound port (the ephemeral one when the configured port is 0). */
    public int port() {
        return port;
    }

    /** Number of exchanges started and not yet answered (including delayed echoes). */
    int inFlight() {
        return inFlight.count();
    }

    /**
     * Stops accepting connections, lets in-flight requests finish (at most {@code drain}), closes idle
     * keep-alive connections and stops every thread the server started. Idempotent.
     *
     * @return whether every in-flight request finished within {@code drain}
     */
    public synchronized boolean shutdown(Duration drain) {
        if (stopped) {
            return drainedCleanly;
        }
        draining = true;
        long deadline = System.nanoTime() + drain.toNanos();
        // stop(n) closes the listener first thing, then polls; stop(0) below ends that poll early.
        int closerSeconds = (int) Math.min(Integer.MAX_VALUE / 1000, drain.toSeconds() + 1);
        Thread closer = new Thread(() -> http.stop(closerSeconds), "echo-stop");
        closer.setDaemon(true);
        closer.start();
        boolean idle;
        try {
            idle = inFlight.awaitIdle(deadline);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            idle = false;
        }
        http.stop(0);
        closer.interrupt(); // cuts short its 200 ms poll; it sees the server finished and returns
        try {
            closer.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (ownScheduler != null) {
            ownScheduler.shutdownNow();
        }
        workers.shutdownNow();
        stopped = true;
        drainedCleanly = idle;
        return idle;
    }

    // ---- request handling -------------------------------------------------------------------------------

    private void handle(HttpExchange ex) {
        inFlight.enter();
        boolean handedOff = false;
        try {
            handedOff = route(ex);
        } catch (IOException e) {
            // The client went away or sent a broken body; there is no one to answer.
        } catch (RuntimeException e) {
            System.err.println(config.serviceName() + ": internal error on " + ex.getRequestMethod() + " "
                    + ex.getRequestURI().getRawPath() + ": " + e);
            if (ex.getResponseCode() == -1) {
                try {
                    send(ex, 500, internalError, null);
                } catch (IOException ignored) {
                    // nothing more to do
                }
            }
        } finally {
            if (!handedOff) {
                finish(ex);
            }
        }
    }

    /** @return true when the answer was handed to the delay scheduler, which then finishes the exchange */
    private boolean route(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getRawPath();
        String method = ex.getRequestMethod();
        if ("/health".equals(path)) {
            if ("GET".equals(method)) {
                boolean healthy = chaos.get().healthy();
                send(ex, healthy ? 200 : 503, healthy ? healthOk : healthDown, null);
            } else {
                send(ex, 405, methodNotAllowed, "GET");
            }
            return false;
        }
        if (config.chaos() && "/_chaos".equals(path)) {
            switch (method) {
                case "GET":
                    send(ex, 200, chaos.get().toJson(), null);
                    break;
                case "POST":
                    updateChaos(ex);
                    break;
                case "DELETE":
                    chaos.set(initialChaos);
                    send(ex, 200, initialChaos.toJson(), null);
                    break;
                default:
                    send(ex, 405, methodNotAllowed, "GET, POST, DELETE");
            }
            return false;
        }
        if (!"POST".equals(method)) {
            send(ex, 405, methodNotAllowed, "POST");
            return false;
        }
        return echo(ex);
    }

    private boolean echo(HttpExchange ex) throws IOException {
        byte[] body = readBody(ex);
        if (body == null) {
            return false;
        }
        try {
            Json.validate(body);
        } catch (Json.InvalidJsonException e) {
            send(ex, 400, Json.error("invalid JSON: " + e.getMessage()), null);
            return false;
        }
        ChaosSettings settings = chaos.get();
        boolean fail = settings.failRate() > 0.0 && ThreadLocalRandom.current().nextDouble() < settings.failRate();
        if (settings.delayMs() == 0) {
            answerEcho(ex, body, fail);
            return false;
        }
        scheduler.schedule(() -> completeLater(ex, body, fail), settings.delayMs());
        return true;
    }

    /** Runs on the scheduler's thread: move the write to a worker so a slow client cannot stall other timers. */
    private void completeLater(HttpExchange ex, byte[] body, boolean fail) {
        Runnable answer = () -> {
            try {
                answerEcho(ex, body, fail);
            } catch (IOException | RuntimeException e) {
                // The client went away during the delay.
            } finally {
                finish(ex);
            }
        };
        try {
            workers.execute(answer);
        } catch (RejectedExecutionException e) {
            answer.run();
        }
    }

    private void answerEcho(HttpExchange ex, byte[] body, boolean fail) throws IOException {
        if (fail) {
            send(ex, 500, injectedFailure, null);
        } else {
            send(ex, 200, body, null);
        }
    }

    private void updateChaos(HttpExchange ex) throws IOException {
        byte[] body = readBody(ex);
        if (body == null) {
            return;
        }
        CharBuffer text;
        try {
            text = Json.validate(body);
        } catch (Json.InvalidJsonException e) {
            send(ex, 400, Json.error("invalid JSON: " + e.getMessage()), null);
            return;
        }
        ChaosSettings.Patch patch;
        try {
            patch = ChaosSettings.parsePatch(Json.readTree(text));
        } catch (ChaosSettings.InvalidChaosException e) {
            send(ex, 400, Json.error(e.getMessage()), null);
            return;
        }
        ChaosSettings updated = chaos.updateAndGet(patch::applyTo);
        send(ex, 200, updated.toJson(), null);
    }

    /**
     * Reads the whole body, holding at most {@link #MAX_BODY_BYTES} + 1 bytes of it.
     *
     * @return the body, or null when it was too long and the 413 has been sent
     */
    private byte[] readBody(HttpExchange ex) throws IOException {
        InputStream in = ex.getRequestBody();
        // The JDK has already refused a malformed or repeated Content-Length and one combined with chunking.
        String declared = ex.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            long length = Long.parseLong(declared.trim());
            if (length > MAX_BODY_BYTES) {
                rejectTooLarge(ex, in);
                return null;
            }
            byte[] body = in.readNBytes((int) length);
            if (body.length < length) {
                throw new EOFException("request body ended after " + body.length + " of " + length + " bytes");
            }
            return body;
        }
        byte[] body = in.readNBytes(MAX_BODY_BYTES + 1);
        if (body.length > MAX_BODY_BYTES) {
            rejectTooLarge(ex, in);
            return null;
        }
        return body;
    }

    private void rejectTooLarge(HttpExchange ex, InputStream in) throws IOException {
        send(ex, 413, bodyTooLarge, null);
        byte[] scratch = new byte[16 * 1024];
        long dropped = 0;
        while (dropped < MAX_DISCARD_BYTES) {
            int n = in.read(scratch);
            if (n < 0) {
                return;
            }
            dropped += n;
        }
        // Not at the end: the JDK closes the connection once the exchange is closed.
    }

    /** Sends head and body; the exchange stays open until {@link #finish}. */
    private void send(HttpExchange ex, int status, byte[] body, String allow) throws IOException {
        Headers headers = ex.getResponseHeaders();
        headers.set("Content-Type", "application/json");
        headers.set("X-Echo-Service", config.serviceName());
        if (allow != null) {
            headers.set("Allow", allow);
        }
        if (draining) {
            headers.set("Connection", "close");
        }
        if ("HEAD".equals(ex.getRequestMethod())) {
            ex.sendResponseHeaders(status, -1);
            return;
        }
        ex.sendResponseHeaders(status, body.length);
        OutputStream out = ex.getResponseBody();
        out.write(body);
        out.flush();
    }

    private void finish(HttpExchange ex) {
        try {
            ex.close();
        } finally {
            inFlight.exit();
        }
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return task -> {
            Thread t = new Thread(task, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
