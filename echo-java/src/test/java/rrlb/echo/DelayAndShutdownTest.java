package rrlb.echo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static rrlb.echo.TestServer.text;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Added latency and graceful shutdown. Ordering is asserted with a scheduler the test releases by hand and with
 * latches, never with timing thresholds.
 */
class DelayAndShutdownTest {

    /** Holds delayed completions until the test runs them. */
    static final class ManualScheduler implements DelayScheduler {
        record Pending(Runnable task, long delayMs) {}

        final BlockingQueue<Pending> pending = new LinkedBlockingQueue<>();

        @Override
        public void schedule(Runnable task, long delayMs) {
            pending.add(new Pending(task, delayMs));
        }

        Pending next() throws InterruptedException {
            Pending p = pending.poll(30, TimeUnit.SECONDS);
            assertNotNull(p, "no delayed echo was scheduled");
            return p;
        }
    }

    /** A real timer that also reports each scheduling, so the test knows a request is in flight. */
    static final class SignallingScheduler implements DelayScheduler {
        final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
        final BlockingQueue<Long> scheduled = new LinkedBlockingQueue<>();

        @Override
        public void schedule(Runnable task, long delayMs) {
            timer.schedule(task, delayMs, TimeUnit.MILLISECONDS);
            scheduled.add(delayMs);
        }

        long awaitScheduled() throws InterruptedException {
            Long d = scheduled.poll(30, TimeUnit.SECONDS);
            assertNotNull(d, "no delayed echo was scheduled");
            return d;
        }
    }

    private TestServer srv;
    private ScheduledExecutorService timerToStop;

    @AfterEach
    void stop() {
        if (srv != null) {
            srv.close();
        }
        if (timerToStop != null) {
            timerToStop.shutdownNow();
        }
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void assertEcho(HttpResponse<byte[]> r, String body) {
        assertEquals(200, r.statusCode(), () -> text(r));
        TestServer.assertCommonHeaders(r);
        assertArrayEquals(bytes(body), r.body());
    }

    /** Polls (there is no signal for it) until connecting fails, bounded. */
    private static void awaitListenerClosed(int port) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 1_000);
            } catch (ConnectException refused) {
                return;
            } catch (IOException other) {
                // timeout or reset: keep trying
            }
            Thread.sleep(20);
        }
        fail("the listener still accepts connections after shutdown began");
    }

    @Test
    void delayedEchoesHoldNoWorker() throws Exception {
        // One worker thread for the whole server: if a delay occupied it, nothing else could be answered.
        ManualScheduler scheduler = new ManualScheduler();
        srv = TestServer.start(TestServer.config(true, 50), scheduler, Executors.newSingleThreadExecutor());

        CompletableFuture<HttpResponse<byte[]>> a = srv.sendAsync("POST", "/a", BodyPublishers.ofString("[\"a\"]"));
        ManualScheduler.Pending pendingA = scheduler.next();
        assertEquals(50, pendingA.delayMs());

        CompletableFuture<HttpResponse<byte[]>> b = srv.sendAsync("POST", "/b", BodyPublishers.ofString("[\"b\"]"));
        ManualScheduler.Pending pendingB = scheduler.next();

        // Both echoes wait; the only worker still answers other requests.
        assertEquals(200, srv.get("/health").statusCode());
        assertEquals(200, srv.get("/_chaos").statusCode());
        assertFalse(a.isDone());
        assertFalse(b.isDone());

        // Release B first: it completes while A is still waiting.
        pendingB.task().run();
        assertEcho(b.get(30, TimeUnit.SECONDS), "[\"b\"]");
        assertFalse(a.isDone());

        pendingA.task().run();
        assertEcho(a.get(30, TimeUnit.SECONDS), "[\"a\"]");
        assertTrue(scheduler.pending.isEmpty());
    }

    @Test
    void delayAppliesToEchoesOnlyAndFollowsChaos() throws Exception {
        ManualScheduler scheduler = new ManualScheduler();
        srv = TestServer.start(TestServer.config(true, 0), scheduler, null);

        // No delay configured: answered directly.
        assertEcho(srv.post("/e", "1"), "1");
        assertTrue(scheduler.pending.isEmpty());

        assertEquals(200, srv.post("/_chaos", "{\"delay_ms\":600000,\"fail_rate\":1}").statusCode());
        assertEquals(200, srv.get("/health").statusCode());
        assertEquals(200, srv.get("/_chaos").statusCode());
        assertEquals(405, srv.get("/e").statusCode());
        assertEquals(400, srv.post("/e", "{").statusCode());
        assertTrue(scheduler.pending.isEmpty(), "only echoes are delayed");

        CompletableFuture<HttpResponse<byte[]>> echo = srv.sendAsync("POST", "/e", BodyPublishers.ofString("2"));
        ManualScheduler.Pending p = scheduler.next();
        assertEquals(600_000, p.delayMs());
        assertFalse(echo.isDone());
        p.task().run();
        // The failure is injected after the delay.
        HttpResponse<byte[]> r = echo.get(30, TimeUnit.SECONDS);
        assertEquals("chaos: injected failure", TestServer.assertError(r, 500));
    }

    @Test
    void realDelayIsNeverShorterThanAsked() throws Exception {
        srv = TestServer.start(TestServer.config(true, 0));
        assertEquals(200, srv.post("/_chaos", "{\"delay_ms\":200}").statusCode());
        long start = System.nanoTime();
        assertEcho(srv.post("/slow", "{\"slow\":true}"), "{\"slow\":true}");
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(elapsedMs >= 200, "answered after " + elapsedMs + " ms");
    }

    @Test
    void shutdownWaitsForADelayedEchoAndClosesIdleConnections() throws Exception {
        ManualScheduler scheduler = new ManualScheduler();
        srv = TestServer.start(TestServer.config(false, 50), scheduler, null);

        try (RawHttp idle = new RawHttp(srv.port); RawHttp reused = new RawHttp(srv.port)) {
            // Two keep-alive connections that have served a request and now sit idle.
            idle.request("GET", "/health", null);
            assertEquals(200, idle.read().status());
            reused.request("GET", "/health", null);
            assertEquals(200, reused.read().status());

            CompletableFuture<HttpResponse<byte[]>> inFlight =
                    srv.sendAsync("POST", "/slow", BodyPublishers.ofString("{\"in\":\"flight\"}"));
            ManualScheduler.Pending pending = scheduler.next();

            CompletableFuture<Boolean> shutdown =
                    CompletableFuture.supplyAsync(() -> srv.server.shutdown(Duration.ofSeconds(30)));
            awaitListenerClosed(srv.port);
            assertFalse(shutdown.isDone(), "shutdown returned while a request was in flight");

            // A request on an existing connection during the drain is answered and that connection closed.
            reused.request("GET", "/health", null);
            RawHttp.Response duringDrain = reused.read();
            assertEquals(200, duringDrain.status());
            assertEquals("close", duringDrain.headers().get("connection"));
            assertTrue(reused.closedByServer());

            pending.task().run();
            assertEcho(inFlight.get(30, TimeUnit.SECONDS), "{\"in\":\"flight\"}");
            assertTrue(shutdown.get(30, TimeUnit.SECONDS), "drain should finish cleanly");
            assertTrue(idle.closedByServer(), "idle keep-alive connection left open");
        }
        assertEquals(0, srv.server.inFlight());
    }

    @Test
    void shutdownFinishesAnInFlightEchoOnTheRealTimer() throws Exception {
        SignallingScheduler scheduler = new SignallingScheduler();
        timerToStop = scheduler.timer;
        srv = TestServer.start(TestServer.config(false, 300), scheduler, null);

        CompletableFuture<HttpResponse<byte[]>> inFlight =
                srv.sendAsync("POST", "/slow", BodyPublishers.ofString("[\"real\"]"));
        assertEquals(300, scheduler.awaitScheduled());
        assertTrue(srv.server.shutdown(Duration.ofSeconds(30)));
        assertEcho(inFlight.get(30, TimeUnit.SECONDS), "[\"real\"]");
    }

    @Test
    void drainIsBounded() throws Exception {
        ManualScheduler scheduler = new ManualScheduler();
        srv = TestServer.start(TestServer.config(false, 50), scheduler, null);
        CompletableFuture<HttpResponse<byte[]>> stuck =
                srv.sendAsync("POST", "/never", BodyPublishers.ofString("[]"));
        scheduler.next(); // never released

        assertFalse(srv.server.shutdown(Duration.ofMillis(200)), "drain cannot finish with a request held");
        ExecutionException e = assertThrows(ExecutionException.class, () -> stuck.get(30, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof IOException, e.toString());
    }

    @Test
    void shutdownOfAnIdleServerIsImmediateAndIdempotent() throws Exception {
        srv = TestServer.start(TestServer.config(false, 0));
        assertEquals(200, srv.get("/health").statusCode());
        CountDownLatch done = new CountDownLatch(1);
        Thread t = new Thread(() -> {
            srv.server.shutdown(Duration.ofSeconds(30));
            done.countDown();
        });
        t.start();
        // Bounded far below the 30 s drain: an idle server must not wait out HttpServer.stop's delay.
        assertTrue(done.await(10, TimeUnit.SECONDS));
        assertTrue(srv.server.shutdown(Duration.ofSeconds(30)));
        assertThrows(IOException.class, () -> new RawHttp(srv.port).close());
    }
}
